"""``python -m cloudfree.cli``: the ``cloudfree`` command."""

import sys

from cloudfree.cli import main

sys.exit(main())
