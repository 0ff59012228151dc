"""`python -m aggregator` is the same as the `aggregator` command."""

import sys

from .cli import main

sys.exit(main())
