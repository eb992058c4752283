"""Leviathan's performance figures. `python -m benchmarks` runs them all."""
