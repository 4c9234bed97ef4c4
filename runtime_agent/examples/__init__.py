"""Example operators shipped with the agent: `TrainExample` (PyTorch on Ray Train) and a legacy-API pair."""
