"""``python -m keck_tui``: the same as the ``keck-top`` command."""
import sys

from keck_tui.cli import main

sys.exit(main())
