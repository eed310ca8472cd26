"""How much work a run asks for, refused up front when it is absurd.

A run of E epochs over n training rows in batches of B takes

    steps = E · ⌈n / B⌉          (a full batch: B = n, one step per epoch)

optimizer steps (:func:`scratch.batching.steps_per_epoch`). :data:`MAX_STEPS` = 10⁷ is the cap:
the cheapest step there is (XOR's 2-4-1 net, tens of µs) would take minutes, an MNIST step of
batch 64 (about a millisecond) hours (``docs/speed.md``) — a typo such as
``--epochs 100000000000000`` would otherwise run until killed.
The refusal is one line naming the flags and the figures (exit status 2), before any step runs.
"""

from __future__ import annotations

from reports.cli.exit_codes import UsageError

MAX_STEPS = 10**7


def check_steps(steps: int, how: str, fix: str) -> None:
    """Raise :class:`UsageError` when ``steps`` exceeds :data:`MAX_STEPS`; ``how`` says where the
    figure comes from (e.g. ``--epochs 1000000000 × ⌈60000 training rows / batch 64⌉``), ``fix``
    what to change."""
    if steps > MAX_STEPS:
        raise UsageError(f"{how} = {steps:.3g} optimizer steps, over the cap of {MAX_STEPS:.0e} "
                         f"(the run would not end in any useful time); {fix}")
