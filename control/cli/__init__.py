"""The `atom` command line: a thin shell over `AsyncControlClient` (entry point `control.cli.main:main`).

Nothing here imports the store or SQLAlchemy, except the embedded-server path
(`control.cli._embedded`), which imports `control.api` lazily when no server is given.
"""
