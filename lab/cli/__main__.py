"""`python -m lab.cli`: the same as the `lab` command."""

import sys

from lab.cli.main import main

sys.exit(main())
