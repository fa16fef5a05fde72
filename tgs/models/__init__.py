"""Model sources: the registry of model roles, real weights and the tiny set."""
