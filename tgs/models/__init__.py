"""Model sources: the registry of model roles, real weights and the tiny set."""

TINY = "tiny"
"""The model source naming the random tiny model of a registry key (install checks, tests): a
source like a hub id or a folder, and the one way to ask for a tiny model."""
