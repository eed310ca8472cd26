"""Which backends run the NumPy engine itself.

A backend *runs the engine* when the model it holds (``backend.model``) is a
:class:`scratch.model.Network` — the engine, a variant of it (``scratch.variants``), or any client
backend built on it. The judge asks this without knowing the client's classes: an engine backend's
own model is the local reference (:func:`judge.explained.engine_of`), and a referee built from the
engine's code is not independent of a side that runs it (:mod:`judge.trajectory`).
"""

from __future__ import annotations

from scratch.model import Network


def runs_engine(backend) -> bool:
    """True when ``backend`` holds a :class:`scratch.model.Network` as its ``model``."""
    return isinstance(getattr(backend, "model", None), Network)
