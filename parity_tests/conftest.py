"""Numerical hygiene and reproducibility for the whole suite.

* ``--seed N`` (or ``PARITY_SEED=N``) shifts every seeded test input, Hypothesis's examples
  included; the suite must pass for any N in 0..99. The header of every run prints the seed and
  the command that reproduces it.
* Framework-specific flags (thread counts, determinism, TF32 off) live in
  ``parity_tests/frameworks/conftest.py``, so the NumPy-only tests never import a framework.
* Under pytest-xdist (``-n N``) each worker gets its share of the cores
  (:func:`_share_the_cores`), and the workers' largest-error tables (``largest_errors``) are
  merged into the one the run prints.
"""

from __future__ import annotations

import os
import platform

import largest_errors
import numpy as np
import pytest
from extended_tier import is_extended


def pytest_addoption(parser):
    parser.addoption("--seed", type=int, default=None,
                     help="global seed offset for seeded test inputs (default: $PARITY_SEED or 0)")


def _global_seed(config) -> int:
    value = config.getoption("--seed")
    if value is None:
        value = int(os.environ.get("PARITY_SEED", "0"))
    return value


def _share_jax_compilations(config) -> None:
    """Under xdist, one JAX compilation cache for the workers of this run (a fresh temporary
    folder, removed at the end: nothing carries over between runs), so an executable one worker
    compiled is read, not compiled again, by the other — the JAX twin's pairs land on different
    workers. Set in the controller's environment, which the workers inherit, before either
    imports JAX; an explicit ``JAX_COMPILATION_CACHE_DIR`` is left alone."""
    import importlib.util
    import shutil
    import tempfile

    if (hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None)
            or "JAX_COMPILATION_CACHE_DIR" in os.environ or importlib.util.find_spec("jax") is None):
        return
    folder = tempfile.mkdtemp(prefix="backprop-parity-jax-")
    os.environ.update(JAX_COMPILATION_CACHE_DIR=folder, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


# what sizes each library's thread pool, read when the library starts
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def _share_the_cores(config) -> None:
    """Under xdist, each worker's BLAS, OpenMP, torch and TensorFlow pools get cores / workers
    threads (at least one; TensorFlow's inter-op pool one), instead of each library taking every
    core in every worker: the suite's steps are small, and on a 2-core machine two workers of two
    threads each spend their time handing work between threads (a tiny torch loss and backward
    took 0.3 ms with 2 threads, 0.07 ms with 1). Set in the controller's environment before the
    workers start; a variable already set is left alone. Thread counts do not change what is
    checked: every comparison holds for any fixed count (``twins.hygiene``)."""
    workers = getattr(config.option, "numprocesses", None)
    if hasattr(config, "workerinput") or not isinstance(workers, int) or workers < 1:
        return
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, threads)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


def pytest_configure(config):
    """Hypothesis draws from the global seed too (unless ``--hypothesis-seed`` is given), so a
    run is reproducible from its header and ``--seed N`` also varies the random architectures.
    Under xdist, the workers share one JAX compilation cache (:func:`_share_jax_compilations`)
    and the cores (:func:`_share_the_cores`)."""
    _share_jax_compilations(config)
    _share_the_cores(config)
    try:
        from hypothesis import core
    except ImportError:
        return
    if config.getoption("--hypothesis-seed", default=None) is None:
        core.global_force_seed = _global_seed(config)


def pytest_collection_modifyitems(config, items):
    """Mark the extended tier (:mod:`extended_tier`) ``extended``."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if is_extended(item.path.name, item.originalname, callspec.id if callspec else None):
            item.add_marker(pytest.mark.extended)


def pytest_sessionfinish(session):
    """An xdist worker hands its largest-error table to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["largest_errors"] = largest_errors.rows()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller merges each worker's largest-error table as the worker finishes."""
    largest_errors.merge(getattr(node, "workeroutput", {}).get("largest_errors", []))


def pytest_terminal_summary(terminalreporter):
    largest_errors.write(terminalreporter)


def pytest_report_header(config):
    seed = _global_seed(config)
    return [f"parity seed: {seed}  (reproduce with: pytest --seed {seed} ...)",
            f"numpy {np.__version__}, python {platform.python_version()}"]


@pytest.fixture(scope="session")
def global_seed(request) -> int:
    """The run's seed offset; tests add it to their own seeds."""
    return _global_seed(request.config)


@pytest.fixture
def rng(global_seed, request) -> np.random.Generator:
    """A generator seeded by the global seed and the test's own id, so each test is
    reproducible on its own and changes with ``--seed``."""
    import zlib

    return np.random.default_rng([global_seed, zlib.crc32(request.node.nodeid.encode())])
