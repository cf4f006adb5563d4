"""``python -m asam_lib ...``: see :mod:`asam_lib.frontends.cli`."""

import sys

from asam_lib.frontends.cli import main

sys.exit(main())
