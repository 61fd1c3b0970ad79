"""``python -m jobstatus.cli`` is the ``jobstatus`` command too."""

import sys

from . import main

sys.exit(main())
