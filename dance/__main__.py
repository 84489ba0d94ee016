"""Entry point for `python -m dance`."""

import sys

from dance.cli import main

sys.exit(main())
