"""The judge: compares any two traces of one spec and says where and why they differ.

A *trace* is what one implementation reports for one batch — its loss, every named intermediate
(Z_l, A_l, dZ_l, dA_l) and every parameter gradient — and, under training, one such record per
step. The judge never builds a model: it is handed traces (and, to localize, the engine's own
layers for the arbiter). The twins (:mod:`twins`) are one client; a user's own model is the next.
It never imports the twins: a caller hands it what it needs — a backend factory
(``training_parity.compare_training(…, make_backend=…)``), the pairs to compare
(``float64_companion.float64_rows(…, pairs)``) — and an engine backend is recognised by the
model it holds (:mod:`judge.engine_backend`).

* :mod:`judge.tolerances` — the one tolerance table, per dtype.
* :mod:`judge.parity` — shape → dtype → values, forward then every gradient; the error floors and
  the first diverging layer.
* :mod:`judge.explained` — a failing row re-judged from its cause (each layer fed the actual's own
  inputs; kinks, ties and long reductions against a float64 arbiter).
* :mod:`judge.pool_ties`, :mod:`judge.reduction_bounds` — max-pool ties and the n·u·κ bound.
* :mod:`judge.stepwise`, :mod:`judge.trajectory`, :mod:`judge.training_parity` — training checked
  per step (each step started from the reference's state) and free-running.
* :mod:`judge.optimizer_state`, :mod:`judge.inference_parity`, :mod:`judge.float64_companion`.
"""
