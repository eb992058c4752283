"""Leviathan: from a bare Talos GPU node to a DeepSeek-V3 GGUF inference service."""

__version__ = "0.1.0"
