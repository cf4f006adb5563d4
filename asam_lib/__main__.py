"""``python -m asam_lib ...``: see :mod:`asam_lib.cli`."""

import sys

from asam_lib.cli import main

sys.exit(main())
