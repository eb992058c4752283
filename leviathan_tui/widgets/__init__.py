"""Textual widgets of the wizard."""
