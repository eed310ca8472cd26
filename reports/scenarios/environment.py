"""Scenario 6: the environment the numbers came from.

Versions (Python, NumPy, torch, TensorFlow, Keras), the BLAS/OpenMP libraries loaded in the
process and their thread counts (``threadpoolctl``), each framework's own thread settings,
the numerical-hygiene flags of ``twins.hygiene`` and the environment variables that change
threading or kernels.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys

ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "KERAS_BACKEND",
            "TF_ENABLE_ONEDNN_OPTS", "PYTHONHASHSEED", "BACKPROP_PARITY_DATA")


def run(hygiene: dict[str, str]) -> dict:
    """``hygiene``: what ``twins.hygiene.configure_frameworks`` returned."""
    import numpy as np

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    threads = {"cpu_count": os.cpu_count() or 0}
    if importlib.util.find_spec("torch") is not None:
        import torch

        versions["torch"] = torch.__version__
        threads["torch_intra_op"] = torch.get_num_threads()
        threads["torch_inter_op"] = torch.get_num_interop_threads()
    if importlib.util.find_spec("tensorflow") is not None:
        import keras
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        versions["keras"] = keras.__version__
        # 0 means "TensorFlow picks" (the number of cores)
        threads["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        threads["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    if importlib.util.find_spec("jax") is not None:
        import jax

        versions["jax"] = jax.__version__
        if importlib.util.find_spec("optax") is not None:
            import optax

            versions["optax"] = optax.__version__
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "versions": versions,
        "threads": threads,
        "blas": _thread_pools(),
        "hygiene": dict(hygiene),
        "env": {name: os.environ.get(name) for name in ENV_VARS},
    }


def _thread_pools() -> list[dict]:
    """One entry per BLAS/OpenMP library loaded in this process (empty without threadpoolctl)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return []
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture")
    pools = []
    for info in threadpool_info():
        entry = {key: info.get(key) for key in keys}
        entry["library"] = os.path.basename(info.get("filepath", ""))
        pools.append(entry)
    return sorted(pools, key=lambda e: (e["user_api"] or "", e["library"]))
