"""Widgets the screens share: the trouble banner, forms, confirm dialog, plots, log view, DAG."""
