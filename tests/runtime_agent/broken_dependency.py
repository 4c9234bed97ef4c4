"""An operator module whose own import fails (a missing third-party package)."""

import not_installed_package_xyz  # noqa: F401


class Model:
    pass
