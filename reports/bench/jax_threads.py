"""The benchmark's JAX settings.

Numerics and threads (:func:`configure_jax`): ``jax_enable_x64`` is switched on before any
array exists (without it JAX silently makes float64 arrays float32). XLA's CPU client sizes its
thread pool from the CPUs the process may use when the client starts, and this XLA ignores the
``XLA_FLAGS`` thread options (``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=N``
left a 1500² product on two cores here); so the client is started under an N-CPU affinity mask,
after which its threads are given every CPU back — N threads, free to move. XLA_FLAGS is not set:
TensorFlow's own XLA reads the same variable in this process (Keras ``train_on_batch``).
"""

from __future__ import annotations

import contextlib
import os


def configure_jax(threads: int | None = None) -> dict[str, str]:
    """Enable float64 and size XLA's CPU pool to ``threads`` (None: its default); returns the
    setting, for the benchmark's ``frameworks`` record."""
    import jax

    jax.config.update("jax_enable_x64", True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else None
    if threads is None or cpus is None:
        pool = "default threads"
    elif _backend_started():
        pool = "threads fixed at start"
    elif threads >= cpus:
        jax.devices("cpu")
        pool = f"threads={cpus} (every CPU)"
    else:
        with _cpu_mask(threads):
            jax.devices("cpu")
        pool = f"threads={threads} (client started under a {threads}-CPU affinity mask)"
    return {"jax": f"{jax.__version__}, x64 enabled, CPU {pool}"}


def _backend_started() -> bool:
    from jax._src import xla_bridge

    started = getattr(xla_bridge, "backends_are_initialized", None)
    return True if started is None else started()          # unknown: assume it is too late


@contextlib.contextmanager
def _cpu_mask(count: int):
    """Restrict this thread to its first ``count`` CPUs; afterwards give it, and the threads
    started meanwhile (which inherited the mask), all of them back. Other threads are untouched."""
    every = os.sched_getaffinity(0)
    before = set(os.listdir("/proc/self/task"))
    os.sched_setaffinity(0, sorted(every)[:count])
    try:
        yield
    finally:
        os.sched_setaffinity(0, every)
        for task in set(os.listdir("/proc/self/task")) - before:
            with contextlib.suppress(OSError):              # a thread that has ended meanwhile
                os.sched_setaffinity(int(task), every)
