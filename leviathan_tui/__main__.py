from leviathan_tui.cli import main

raise SystemExit(main())
