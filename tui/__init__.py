"""Atom terminal dashboard (Textual), talking to control over HTTP."""
