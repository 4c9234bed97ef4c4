"""Atom control: the HTTP API, the store, the dispatcher and the reconcile loop."""
