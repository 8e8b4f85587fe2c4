"""``python -m lakelabel``: the ``lakelabel`` command."""

import sys

from lakelabel.jobs.cli import main

sys.exit(main())
