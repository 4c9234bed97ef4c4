"""Atom runtime agent: runs one operator task (train, reason, data) or serves a model."""
