"""``python -m reports``: the same command line as ``backprop-parity``."""

from reports.cli.main import main

raise SystemExit(main())
