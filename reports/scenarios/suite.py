"""The report's scenario set in three sizes (profiles), and the one function that runs it.

A profile is a list of rows (scenario, model, settings): the parity, curves, divergence
and explain scenarios each run one model, so the convolutional net is a row of each (``lenet5``),
not a copy of them. The profile's model slot holds the model ``report`` resolves from its model
flags (``--model``, ``--spec``, ``--weights`` and the spec flags, :mod:`reports.cli.model_source`):
the one default of every command, :data:`scratch.catalog.DEFAULT_MODEL` (``mnist-default``: seed
002's net, He-normal), when none is given.

=========== ============================================================================
``quick``   a tiny set for tests (seconds per scenario; nothing in it is a seed's setting)
``default`` what ``backprop-parity report`` runs: minutes on 2 cores; the seeds' MNIST runs
            use a fixed subset of the training set (the first n samples), labelled REDUCED
``full``    ``--full``: the seeds' real settings (all 60,000 samples, 800 full-batch steps;
            10 epochs of Adam): an hour or more on 2 cores
=========== ============================================================================

Each scenario is a module ``reports.scenarios.*`` with a settings dataclass and
``run(ctx, model, settings) -> dict`` (``run(ctx, settings)`` for those that pick their own
models); :data:`SCENARIOS` names them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from reports.scenarios import cnn_findings as scenario_findings
from reports.scenarios import conventions as scenario_conventions
from reports.scenarios import curves as scenario_curves
from reports.scenarios import divergence as scenario_divergence
from reports.scenarios import environment as scenario_environment
from reports.scenarios import explain as scenario_explain
from reports.scenarios import parity as scenario_parity
from reports.scenarios import seeds as scenario_seeds
from reports.scenarios import variants as scenario_variants
from reports.scenarios.common import Context, ScenarioModel, scenario_model
from reports.schema import FORMAT, validate
from reports.verdict.report import report_verdict
from scratch import catalog

# lenet5's curves: torch-convention Adam (the catalog's: scratch, torch, JAX) and Keras-convention
# Adam (the Keras twin, whose optimizers cannot express torch's)
CNN_OPTIMIZERS = ("adam-torch", "adam-keras")
MODEL = "model"           # a row's model slot: the profile's model (default catalog.DEFAULT_MODEL)

# scenario → runner taking (ctx, catalog name, ScenarioModel or None, settings). The model scenarios —
# parity, curves, divergence, explain, the CNN findings — keep a list in results.json, one entry per row;
# the others (seeds, variants, conventions) run their own models and keep one entry.
SCENARIOS: dict[str, Callable] = {
    "parity": scenario_parity.run,
    "curves": scenario_curves.run,
    "divergence": scenario_divergence.run,
    "seeds": lambda ctx, model, settings: scenario_seeds.run(ctx, settings),
    "variants": lambda ctx, model, settings: scenario_variants.run(ctx, settings),
    "conventions": lambda ctx, model, settings: scenario_conventions.run(ctx, settings),
    "findings": scenario_findings.run,
    "explain": scenario_explain.run,
}
MODEL_SCENARIOS = ("parity", "curves", "divergence", "findings", "explain")


@dataclass(frozen=True)
class Row:
    """One scenario run on one model: ``model`` is a catalog name, a
    :class:`~reports.scenarios.common.ScenarioModel` (the profile's, from ``--spec`` or
    ``--weights``), :data:`MODEL` (the profile's model) or ``None`` (a scenario that picks its own
    models)."""

    scenario: str
    model: str | ScenarioModel | None
    settings: object

    @property
    def model_name(self) -> str | None:
        """The model's name in results.json (``None`` for a scenario without a model)."""
        return self.model.name if isinstance(self.model, ScenarioModel) else self.model

    @property
    def key(self) -> str:
        """``parity mnist-default``; ``seeds`` for a scenario without a model (its timing's name)."""
        return self.scenario if self.model is None else f"{self.scenario} {self.model_name}"


@dataclass(frozen=True)
class Profile:
    """One size of the report: its rows, in report order, and the model of the :data:`MODEL` rows
    (a catalog name or a :class:`~reports.scenarios.common.ScenarioModel`)."""

    name: str
    rows: tuple[Row, ...]
    model: str | ScenarioModel = catalog.DEFAULT_MODEL

    @property
    def model_name(self) -> str:
        """The slot model's name in results.json and the verdict."""
        return scenario_model(self.model).name

    def resolved(self) -> tuple[Row, ...]:
        """The rows with the :data:`MODEL` slot filled in, each (scenario, model) once. A
        convolutional model in the slot takes the settings of the profile's row of the same
        scenario on a convolutional model, where there is one (sized for the slower conv step)."""
        conv = {row.scenario: row.settings for row in self.rows
                if row.model not in (None, MODEL) and not catalog.spec(row.model).is_mlp}
        slot_is_conv = not scenario_model(self.model).spec.is_mlp
        out: dict[tuple[str, str | None], Row] = {}
        for row in self.rows:
            if row.model == MODEL:
                settings = conv.get(row.scenario, row.settings) if slot_is_conv else row.settings
                row = Row(row.scenario, self.model, settings)
            out.setdefault((row.scenario, row.model_name), row)
        return tuple(out.values())


def _rows(model_rows: dict, other_rows: dict, cnn_rows: dict, explain) -> tuple[Row, ...]:
    """Report order: the slot model's parity, curves, divergence; seeds, variants, conventions;
    lenet5's parity, curves and convention findings; the slot model's explain."""
    return (*(Row(scenario, MODEL, settings) for scenario, settings in model_rows.items()),
            *(Row(scenario, None, settings) for scenario, settings in other_rows.items()),
            *(Row(scenario, "lenet5", settings) for scenario, settings in cnn_rows.items()),
            Row("explain", MODEL, explain))


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", _rows(
        {"parity": scenario_parity.ParitySettings(batch=16),
         "curves": scenario_curves.CurveSettings(samples=160, batch_size=32),
         "divergence": scenario_divergence.DivergenceSettings(samples=320, batch_size=32)},
        {"seeds": scenario_seeds.SeedSettings(gd_samples=200, gd_steps=10, adam_samples=320, adam_epochs=1,
                                              xor_steps=50),
         "variants": scenario_variants.VariantSettings(batch=16, steps=3),
         "conventions": scenario_conventions.ConventionSettings(samples=320, checkpoints=(1, 5))},
        {"parity": scenario_parity.ParitySettings(batch=16, dtypes=("float32", "float64")),
         "curves": scenario_curves.CurveSettings(samples=32, batch_size=16, dtypes=("float32", "float64"),
                                                 optimizers=CNN_OPTIMIZERS),
         "divergence": scenario_divergence.DivergenceSettings(samples=32, batch_size=16),
         "findings": scenario_findings.FindingSettings(samples=32, batchnorm_steps=2)},
        scenario_explain.ExplainSettings())),
    "default": Profile("default", _rows(
        {"parity": scenario_parity.ParitySettings(batch=256),
         "curves": scenario_curves.CurveSettings(samples=6400),
         "divergence": scenario_divergence.DivergenceSettings(samples=12800)},
        {"seeds": scenario_seeds.SeedSettings(gd_samples=2000, adam_samples=10000, adam_epochs=2),
         "variants": scenario_variants.VariantSettings(),
         "conventions": scenario_conventions.ConventionSettings(samples=12800)},
        {"parity": scenario_parity.ParitySettings(batch=32, dtypes=("float32", "float64")),
         "curves": scenario_curves.CurveSettings(samples=512, batch_size=16, dtypes=("float32", "float64"),
                                                 optimizers=CNN_OPTIMIZERS),
         "divergence": scenario_divergence.DivergenceSettings(samples=512, batch_size=16),
         "findings": scenario_findings.FindingSettings()},
        scenario_explain.ExplainSettings())),
    "full": Profile("full", _rows(
        {"parity": scenario_parity.ParitySettings(batch=1000),
         "curves": scenario_curves.CurveSettings(samples=60000),
         "divergence": scenario_divergence.DivergenceSettings(samples=60000)},
        {"seeds": scenario_seeds.FULL,
         "variants": scenario_variants.VariantSettings(),
         "conventions": scenario_conventions.ConventionSettings(samples=60000)},
        {"parity": scenario_parity.ParitySettings(batch=64, dtypes=("float32", "float64")),
         "curves": scenario_curves.CurveSettings(samples=2048, batch_size=64, dtypes=("float32", "float64"),
                                                 optimizers=CNN_OPTIMIZERS),
         "divergence": scenario_divergence.DivergenceSettings(samples=2048, batch_size=64),
         "findings": scenario_findings.FindingSettings(samples=256, batchnorm_steps=50)},
        scenario_explain.ExplainSettings())),
}


def with_model(profile: Profile, model: str | ScenarioModel) -> Profile:
    """``profile`` with ``model`` (a catalog name or a
    :class:`~reports.scenarios.common.ScenarioModel`) in its model slot (parity, curves, divergence
    and explain run on it; the other rows keep their models). An unknown name is a
    :class:`SpecError` listing the catalog."""
    if not isinstance(model, ScenarioModel):
        catalog.get_model(model)
    return dataclasses.replace(profile, model=model)


def run_all(profile: Profile, ctx: Context, hygiene: dict[str, str], command: str = "") -> dict:
    """Run every scenario of ``profile``; the results dict (validated against the schema)."""
    from tqdm import tqdm

    started = time.perf_counter()
    rows = profile.resolved()
    results = {
        "format": FORMAT,
        "mode": profile.name,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "backends": {"used": list(ctx.backends), "skipped": dict(ctx.skipped)},
        "model": profile.model_name,
        "rows": [{"scenario": row.scenario, "model": row.model_name,
                  "settings": dataclasses.asdict(row.settings)} for row in rows],
        "timings_s": {},
        **{scenario: [] for scenario in MODEL_SCENARIOS},
    }
    with tqdm(rows, desc="report", unit="scenario", disable=not ctx.progress, dynamic_ncols=True) as bar:
        for row in bar:
            bar.set_postfix_str(row.key)
            begin = time.perf_counter()
            result = SCENARIOS[row.scenario](ctx, row.model, row.settings)
            if row.scenario in MODEL_SCENARIOS:
                results[row.scenario].append(result)
            else:
                results[row.scenario] = result
            results["timings_s"][row.key] = round(time.perf_counter() - begin, 3)
    results["environment"] = scenario_environment.run(hygiene)
    results["wall_time_s"] = round(time.perf_counter() - started, 3)
    results["verdict"] = report_verdict(results)
    validate(results)
    return results
