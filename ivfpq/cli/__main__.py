"""``python -m ivfpq.cli``: the ``ivfpq`` command."""

import sys

from . import main

sys.exit(main())
