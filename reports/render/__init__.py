"""Rendering the report: pure functions from the results dict to files. ``document`` builds the
format-independent content (sections of paragraphs, tables, images), ``html`` and ``markdown``
write it out, ``plots`` and ``heatmap`` draw the PNGs (matplotlib's Agg canvas, no pyplot
state). Nothing here runs a backend: the same ``results.json`` always renders the same report.
"""
