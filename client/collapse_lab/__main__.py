"""``python -m collapse_lab sync DIR... [URL]``: see :mod:`collapse_lab.sync`."""

import sys

from .sync import main

sys.exit(main())
