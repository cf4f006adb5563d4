"""Progress bars that honour ``TQDM_DISABLE`` in Jupyter kernels too.

``tqdm.auto`` picks the notebook widget in a kernel, and the widget passes ``disable=False`` explicitly,
overriding the environment variable that plain tqdm reads. Test runs (nbval, papermill under ``make``) set
``TQDM_DISABLE=1`` and should print no bar anywhere; people running a notebook by hand still get one.
"""

from __future__ import annotations

import os
from functools import partial

from tqdm.auto import tqdm as _tqdm

tqdm = partial(_tqdm, disable=True) if os.environ.get("TQDM_DISABLE", "") not in ("", "0") else _tqdm
