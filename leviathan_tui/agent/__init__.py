"""Node agents: run inside the helper pod (stdlib + huggingface_hub only), one JSON event a line."""
