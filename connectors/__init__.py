"""Atom connectors: read and write the stores a company already has, as pandas DataFrames."""
