"""Rendering the report: pure functions from the results dict to files. ``document`` builds the
format-independent content (one section per model and scenario) from ``blocks`` (paragraphs,
tables, images and the shared number formats), with ``findings`` (the conv convention findings),
``ties`` (max-pool ties) and ``bench`` (the benchmark section, every bench file alike); ``html``
and ``markdown`` write it out, ``plots`` and ``heatmap`` draw the PNGs (matplotlib's Agg canvas, no
pyplot state). Nothing here runs a backend: the same ``results.json``
always renders the same report.
"""
