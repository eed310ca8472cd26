"""``python -m reports``: the same command line as ``backprop-parity``."""

from reports.cli import main

raise SystemExit(main())
