"""``python -m jobstatus`` is the ``jobstatus`` command."""

import sys

from .cli import main

sys.exit(main())
