"""Your own models: read a Keras model, a torch module, a NumPy implementation, a JAX function or a
weight file into the one spec (:mod:`ports.reading`), compare two of them (:mod:`ports.compare`)
and, where they disagree, name the known convention that explains it (:mod:`ports.doctor`).

A *side* of a comparison is read twice over: its **reading** (the spec, the canonical tensors and
running statistics, what the reading assumed) and its **real model** (the user's own object, run
as it is: :class:`ports.reading.RealModel`). The reading is checked against the real model first —
outputs in both modes, the loss, every parameter gradient and one optimizer step — so that
everything measured on the reading (per-layer parity, training, the doctor) is measured on what
the user's code really computes.
"""
