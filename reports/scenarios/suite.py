"""The report's scenario set in three sizes, and the one function that runs it.

=========== ============================================================================
``quick``   a tiny set for tests (seconds per scenario; nothing in it is a seed's setting)
``default`` what ``backprop-parity report`` runs: minutes on 2 cores; the seeds' MNIST runs
            use a fixed subset of the training set (the first n samples), labelled REDUCED
``full``    ``--full``: the seeds' real settings (all 60,000 samples, 800 full-batch steps;
            10 epochs of Adam): an hour or more on 2 cores
=========== ============================================================================

Each scenario is a module ``reports.scenarios.*`` with a settings dataclass and
``run(ctx, settings) -> dict``; :data:`SCENARIOS` lists them in report order.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from reports.scenarios import cnn as scenario_cnn
from reports.scenarios import conventions as scenario_conventions
from reports.scenarios import curves as scenario_curves
from reports.scenarios import divergence as scenario_divergence
from reports.scenarios import environment as scenario_environment
from reports.scenarios import explain as scenario_explain
from reports.scenarios import parity as scenario_parity
from reports.scenarios import seeds as scenario_seeds
from reports.scenarios import variants as scenario_variants
from reports.scenarios.common import Context
from reports.schema import FORMAT, validate
from reports.verdict.report import report_verdict


@dataclass(frozen=True)
class Profile:
    """One size of the scenario set: every scenario's settings."""

    name: str
    parity: scenario_parity.ParitySettings
    curves: scenario_curves.CurveSettings
    divergence: scenario_divergence.DivergenceSettings
    seeds: scenario_seeds.SeedSettings
    variants: scenario_variants.VariantSettings
    conventions: scenario_conventions.ConventionSettings
    cnn: scenario_cnn.CnnSettings


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick",
        scenario_parity.ParitySettings(batch=16),
        scenario_curves.CurveSettings(samples=160, batch_size=32),
        scenario_divergence.DivergenceSettings(samples=320, batch_size=32),
        scenario_seeds.SeedSettings(gd_samples=200, gd_steps=10, adam_samples=320, adam_epochs=1,
                                    xor_steps=50),
        scenario_variants.VariantSettings(batch=16, steps=3),
        scenario_conventions.ConventionSettings(samples=320, checkpoints=(1, 5)),
        scenario_cnn.CnnSettings(batch=16, samples=32, batch_size=16, finding_samples=32, batchnorm_steps=2),
    ),
    "default": Profile(
        "default",
        scenario_parity.ParitySettings(batch=256),
        scenario_curves.CurveSettings(samples=6400),
        scenario_divergence.DivergenceSettings(samples=12800),
        scenario_seeds.SeedSettings(gd_samples=2000, adam_samples=10000, adam_epochs=2),
        scenario_variants.VariantSettings(),
        scenario_conventions.ConventionSettings(samples=12800),
        scenario_cnn.CnnSettings(),
    ),
    "full": Profile(
        "full",
        scenario_parity.ParitySettings(batch=1000),
        scenario_curves.CurveSettings(samples=60000),
        scenario_divergence.DivergenceSettings(samples=60000),
        scenario_seeds.FULL,
        scenario_variants.VariantSettings(),
        scenario_conventions.ConventionSettings(samples=60000),
        scenario_cnn.CnnSettings(batch=64, samples=2048, batch_size=64, finding_samples=256,
                                 batchnorm_steps=50),
    ),
}

# The scenarios whose settings carry the MNIST net they compare on (``layer_sizes``).
NET_SCENARIOS = ("parity", "curves", "divergence", "conventions")


def with_model(profile: Profile, name: str) -> Profile:
    """``profile`` with the catalog model ``name``'s layer sizes as the net of the parity, curves,
    divergence and conventions scenarios (each keeps its own initializer, optimizers, samples and
    seed). The seeds scenario runs its own catalog models; the variants and explain scenarios stay
    on ``seed-002``'s net. ``name`` must be an MNIST model (a :class:`SpecError` otherwise)."""
    from scratch.catalog import require_dataset

    sizes = require_dataset(name, "mnist", "the report (its scenarios compare on MNIST)").spec().layer_sizes
    return dataclasses.replace(profile, **{key: dataclasses.replace(getattr(profile, key), layer_sizes=sizes)
                                           for key in NET_SCENARIOS})


# results key → (runner taking (ctx, profile)); report order
SCENARIOS: dict[str, Callable[[Context, Profile], dict]] = {
    "parity": lambda ctx, p: scenario_parity.run(ctx, p.parity),
    "curves": lambda ctx, p: scenario_curves.run(ctx, p.curves),
    "divergence": lambda ctx, p: scenario_divergence.run(ctx, p.divergence),
    "seeds": lambda ctx, p: scenario_seeds.run(ctx, p.seeds),
    "variants": lambda ctx, p: scenario_variants.run(ctx, p.variants),
    "conventions": lambda ctx, p: scenario_conventions.run(ctx, p.conventions),
    "cnn": lambda ctx, p: scenario_cnn.run(ctx, p.cnn),
    "explain": lambda ctx, p: scenario_explain.run(ctx),
}


def run_all(profile: Profile, ctx: Context, hygiene: dict[str, str], command: str = "") -> dict:
    """Run every scenario of ``profile``; the results dict (validated against the schema)."""
    from tqdm import tqdm

    started = time.perf_counter()
    results = {
        "format": FORMAT,
        "mode": profile.name,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "backends": {"used": list(ctx.backends), "skipped": dict(ctx.skipped)},
        "settings": {f.name: dataclasses.asdict(getattr(profile, f.name))
                     for f in dataclasses.fields(profile) if f.name != "name"},
        "timings_s": {},
    }
    with tqdm(SCENARIOS.items(), desc="report", unit="scenario", disable=not ctx.progress,
              dynamic_ncols=True) as scenarios:
        for key, scenario in scenarios:
            scenarios.set_postfix_str(key)
            begin = time.perf_counter()
            results[key] = scenario(ctx, profile)
            results["timings_s"][key] = round(time.perf_counter() - begin, 3)
    results["environment"] = scenario_environment.run(hygiene)
    results["wall_time_s"] = round(time.perf_counter() - started, 3)
    results["verdict"] = report_verdict(results)
    validate(results)
    return results
