"""Textual screens of the wizard; each screen's .tcss lives beside it."""

BACK = "\x00back"  # what a dialog answers when the operator goes back
LATER = "\x00later"  # what a dialog answers when the operator puts it aside
