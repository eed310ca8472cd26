"""Reports and the ``backprop-parity`` command line; report generation comes in a later issue."""
