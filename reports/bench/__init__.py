"""The training-step benchmark behind ``backprop-parity bench``, for any catalog model: ``grid``
names the measured points (batch size × dtype × optimizer: the default model's grid, or the
model's own), ``steps`` builds one zero-argument training step per backend — each backend's public
step, the one its ``fit(fused=True)`` runs —, ``plain_numpy`` the plain NumPy baseline step,
``timing`` times them interleaved (quartiles, FLOP rate against a GEMM peak), ``profile`` times the
engine's step layer by layer, ``memory`` measures peak memory, one backend per fresh process, and
``jax_threads`` sets JAX's numerics and thread pool.
"""
