"""Textual screens of the wizard; each screen's .tcss lives beside it."""
