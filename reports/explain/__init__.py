"""The backprop study behind ``backprop-parity explain``: :mod:`reports.explain.walk` walks one
backward pass layer by layer, the NumPy engine's line beside what each framework runs for the same
gradient — the torch autograd nodes (``torch_graph``), the TensorFlow gradient ops (``tf_graph``)
and the JAX jaxpr equations (``jax_graph``) — with each framework's largest difference from scratch.
"""
