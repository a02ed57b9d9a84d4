"""`python -m lab`: the same as the `lab` command."""

import sys

from lab.cli.main import main

sys.exit(main())
