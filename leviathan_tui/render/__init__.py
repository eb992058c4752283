"""Renderers: manifests, Talos patches, the Dockerfile and build commands, remote job scripts.
Pure functions of the config (and records); they touch nothing."""
