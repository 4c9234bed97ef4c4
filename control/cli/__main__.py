"""`python -m control.cli`: the same as the `atom` command."""

import sys

from control.cli.main import main

sys.exit(main())
