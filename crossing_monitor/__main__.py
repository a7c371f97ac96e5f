"""`python -m crossing_monitor` is `crossing-monitor`."""

import sys

from crossing_monitor.cli import main

sys.exit(main())
