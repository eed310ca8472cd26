"""The backprop study: one training step of a catalog model, the NumPy engine's hand-written
backward beside the records torch, TensorFlow and JAX keep of the same backward.

Each part computes a JSON-ready dict from one :class:`reports.study.run.StudyRun` and turns that
dict into report blocks (``reports.render.blocks``), so ``backprop-parity study`` and the report's
study section show the same content from the same numbers:

* :mod:`reports.study.run` — the one step every part reads: spec, parameters, batch, forward pass
  and gradients of the engine;
* :mod:`reports.study.page` — the self-contained HTML page that puts the parts together.
"""
