"""The training-step benchmark behind ``backprop-parity bench``: ``grid`` names the measured
points (batch size × dtype × optimizer on the catalog's seed net), ``steps`` builds one
zero-argument training step per backend, ``jax_step`` the optional ``jax.jit`` step, ``timing``
times them interleaved (quartiles, FLOP rate against a GEMM peak) and ``memory`` measures peak
memory, one backend per fresh process.
"""
