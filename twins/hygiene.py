"""Numerical hygiene for the frameworks, in one place (used by the test suite and the CLI).

Call :func:`configure_frameworks` before anything imports torch or TensorFlow:

* ``KERAS_BACKEND=tensorflow`` — Keras 3 picks its backend at import.
* ``TF_ENABLE_ONEDNN_OPTS=0`` — TensorFlow's oneDNN graph rewrites reorder floating-point
  sums ("you may see slightly different numerical results"); off, TF runs its Eigen kernels.
  torch keeps its default CPU kernels (MKL/oneDNN GEMM), which are deterministic for a fixed
  thread count.
* ``TF_CPP_MIN_LOG_LEVEL=2`` — silence TF's start-up banner.
* torch: ``use_deterministic_algorithms(True)``; TF32 off for CUDA matmul and cuDNN.
* TensorFlow: ``enable_op_determinism()``; TF32 off.
* torch is imported before TensorFlow (both ship OpenMP/protobuf; this order is the one tested).

Thread counts are left at each library's default unless ``threads`` is given; determinism holds
for any fixed count.
"""

from __future__ import annotations

import importlib.util
import os


def configure_frameworks(threads: int | None = None) -> dict[str, str]:
    """Set the flags above for every installed framework; returns what was set, for headers."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = {"KERAS_BACKEND": os.environ["KERAS_BACKEND"],
                "TF_ENABLE_ONEDNN_OPTS": os.environ["TF_ENABLE_ONEDNN_OPTS"]}
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.use_deterministic_algorithms(True)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        if threads is not None:
            torch.set_num_threads(threads)
        settings["torch"] = f"{torch.__version__}, threads={torch.get_num_threads()}, deterministic, no TF32"
    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        tf.config.experimental.enable_tensor_float_32_execution(False)
        tf_threads = "default threads"
        if threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
                tf_threads = f"intra-op threads={threads}"
            except RuntimeError:                       # TF already started in this process
                fixed = tf.config.threading.get_intra_op_parallelism_threads()
                tf_threads = f"threads fixed at start ({fixed})"
        import keras

        settings["tensorflow"] = (f"{tf.__version__} (keras {keras.__version__}), op determinism, no TF32, "
                                  f"{tf_threads}")
    return settings
