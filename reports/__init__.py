"""The report, the backprop study, the benchmark and the ``backprop-parity`` command line.

Sub-packages, one concept each: :mod:`reports.cli` (the command line: one module per command and
the argument, path, thread and exit-status helpers they share), :mod:`reports.scenarios` (the
comparison experiments that produce ``results.json``), :mod:`reports.render` (``results.json`` →
HTML, Markdown and PNG), :mod:`reports.bench` (the training-step benchmark),
:mod:`reports.explain` (the backprop study) and :mod:`reports.verdict` (the one-line verdicts of
``check`` and the report). :mod:`reports.schema` is the contract between scenarios and render;
:mod:`reports.json_file` is the one writer of every JSON file the commands produce.
"""
