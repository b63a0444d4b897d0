"""`python -m links`: see links/cli.py."""

import sys

from links.cli import main

sys.exit(main())
