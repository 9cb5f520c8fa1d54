"""Models shared by training, inference and metrics: the registry, the networks and the
gap-filling baselines (registered as models too)."""
