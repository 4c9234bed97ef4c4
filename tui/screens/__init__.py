"""The dashboard's screens: one module per screen, all built on `screens.base.AtomScreen`."""
