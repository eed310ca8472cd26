"""The twins: the spec's model in real torch.nn/torch.optim and real Keras 3 on TensorFlow.

Every backend mirrors one interface (see :mod:`reference.backend_base`) and is picked by name from
:data:`reference.backends.BACKENDS`. Framework imports happen inside the backend modules, which
are imported only when a backend is asked for, so ``scratch`` works without any framework.
"""

from reference.backends import BACKENDS, available_backends, make_backend, make_backend_from_file

__all__ = ["BACKENDS", "available_backends", "make_backend", "make_backend_from_file"]
