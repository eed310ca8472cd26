"""The report's scenarios: each module (``parity``, ``curves``, ``divergence``, ``explain`` — each
run on one catalog model —, ``seeds``, ``variants``, ``conventions``, ``cnn_findings``,
``environment``) is one experiment with a settings dataclass and ``run(ctx, settings) -> dict``
over the shared run context (``common``); :mod:`reports.scenarios.suite` names the three profiles
(quick, default, full: lists of (scenario, model) rows) and runs them
into the one results dict that :mod:`reports.schema` validates and :mod:`reports.render` draws.
"""
