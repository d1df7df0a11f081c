"""``python -m wmprobe.cli ...``: the same as the ``wmprobe`` command."""
import sys

from wmprobe.cli import main

sys.exit(main())
