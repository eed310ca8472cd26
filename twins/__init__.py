"""The twins: the spec's model from real torch.nn/torch.optim, Keras 3 on TensorFlow and JAX/optax.

Every backend mirrors one interface (see :mod:`twins.backend_base`) and is picked by name from
:data:`twins.backends.BACKENDS`. Framework imports happen inside the backend modules, which
are imported only when a backend is asked for, so ``scratch`` works without any framework.
"""

from twins.backends import BACKENDS, available_backends, make_backend, make_backend_from_file

__all__ = ["BACKENDS", "available_backends", "make_backend", "make_backend_from_file"]
