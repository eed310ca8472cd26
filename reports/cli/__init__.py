"""The ``backprop-parity`` command line (also ``python -m reports``): :mod:`reports.cli.main`
dispatches to one module per command (``train``, ``check``, ``bench``, ``report``,
``explain``, ``models``), each defining ``add_arguments`` and ``run``; the helpers they share live
beside them — which model a command runs (``model_source``: ``--model``, ``--spec``,
``--weights`` and the spec flags, one default), a twin's own training loop (``backend_training``,
``train --backend``), argument types (``args``), output-path checks (``output_paths``), thread limits
(``threads``), the model-size check (``model_memory``), reading a user's text file
(``text_file``) and the exit statuses, defined once (``exit_codes``). Nothing here imports a
framework at import time: a command validates its input first, then imports what it runs.
"""
