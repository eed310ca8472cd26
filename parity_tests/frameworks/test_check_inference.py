"""``check`` compares inference mode with the weight file's running statistics (issue 18, part 1
item 5), and a save → load round trip keeps every backend's inference bit-identical.

Every backend gets the file's BatchNorm statistics; each pair adds the rows ``inference ZL`` and
``inference AL`` (no dropout, BatchNorm by the running statistics), judged with the forward bound.
A twin that ignores the file's statistics passes every training-mode row — they never read them —
and fails exactly the inference rows of its pairs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from reports.cli.main import main
from scratch.layer_specs import BatchNormSpec, DenseSpec
from scratch.model import Network, save_model
from scratch.spec import ModelSpec

# the BatchNorm convention each twin can express (torch: unbiased running variance; Keras: biased)
NORMS = {"torch": BatchNormSpec(activation="relu"),
         "keras": BatchNormSpec(decay=0.99, epsilon=1e-3, running_variance="biased", activation="relu"),
         "jax": BatchNormSpec(decay=0.8, epsilon=1e-4, activation="tanh")}
FRAMEWORKS = {"torch": "torch", "keras": "tensorflow", "jax": "jax"}


def trained_file(tmp_path, twin: str, seed: int):
    """A BatchNorm MLP trained by the engine for 6 steps (its statistics moved), saved."""
    spec = ModelSpec(inputs=5, layers=(DenseSpec(6, "identity"), NORMS[twin], DenseSpec(3, "softmax")),
                     batch_size=8, epochs=2, seed=seed, init="glorot_uniform")
    rng = np.random.default_rng(seed)
    model = Network(spec)
    model.fit(rng.standard_normal((24, 5)), rng.integers(0, 3, 24))
    mean, variance = model.statistics[0]
    assert np.all(mean != 0) and np.all(variance != 1)
    save_model(model, tmp_path / f"{twin}.safetensors")
    return tmp_path / f"{twin}.safetensors"


def ignoring_statistics(monkeypatch, twin: str) -> None:
    """Make ``twin`` build with its initial statistics (0 and 1) whatever it is given."""
    if twin == "torch":
        monkeypatch.setattr("twins.torch_backend.TorchBackend.load_statistics",
                            lambda self, statistics: None)
    elif twin == "keras":
        monkeypatch.setattr("twins.keras_backend.KerasBackend._assign_statistics",
                            lambda self, statistics: None)
    else:
        from twins.jax_backend import JaxBackend

        running = JaxBackend._running
        monkeypatch.setattr(JaxBackend, "_running", lambda self, statistics: running(self, None))


def _check(path, twin: str, out) -> tuple[int, dict]:
    code = main(["check", "--weights", str(path), "--backends", f"scratch,{twin}", "--steps", "0",
                 "--batch", "16", "--json", str(out)])
    return code, json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("twin", NORMS)
def test_check_compares_inference_with_the_files_statistics(tmp_path, twin, global_seed, capsys, monkeypatch):
    """… and every backend holds the file's statistics (were none given them, all would agree on
    the initial 0 and 1, and the pair could not tell)."""
    pytest.importorskip(FRAMEWORKS[twin])
    import twins.backends
    from scratch.weights import load_weights

    path = trained_file(tmp_path, twin, global_seed)
    built, make_backend = [], twins.backends.make_backend

    def recording(name, spec, statistics=None, *, tensors):
        backend = make_backend(name, spec, statistics=statistics, tensors=tensors)
        built.append((name, backend.statistics()))
        return backend

    monkeypatch.setattr(twins.backends, "make_backend", recording)
    code, result = _check(path, twin, tmp_path / "ok.json")
    [(mean, variance)] = load_weights(path).statistics
    assert [name for name, _ in built] == ["scratch", twin]
    for name, [(held_mean, held_variance)] in built:
        np.testing.assert_array_equal(held_mean, mean, err_msg=name)
        np.testing.assert_array_equal(held_variance, variance, err_msg=name)
    inference = [row for row in result["comparisons"] if row["kind"] == "inference"]
    assert code == 0, capsys.readouterr().out
    assert [(row["pair"], row["quantity"]) for row in inference] == [
        (f"{twin} vs scratch", "inference Z3"), (f"{twin} vs scratch", "inference A3")]
    assert all(row["ok"] and row["tolerance"] == 1e-13 for row in inference)


@pytest.mark.deliberate_mismatch
@pytest.mark.parametrize("twin", NORMS)
def test_a_twin_ignoring_the_files_statistics_fails_the_inference_rows_only(tmp_path, twin, global_seed,
                                                                             monkeypatch, capsys):
    pytest.importorskip(FRAMEWORKS[twin])
    path = trained_file(tmp_path, twin, global_seed)
    ignoring_statistics(monkeypatch, twin)
    code, result = _check(path, twin, tmp_path / "fail.json")
    out = capsys.readouterr().out
    assert code == 1, out
    failed = [row["quantity"] for row in result["comparisons"] if not row["ok"]]
    assert failed == ["inference Z3", "inference A3"], failed       # training mode never reads them
    assert out.startswith(f"verdict: FAIL — 2 of {len(result['comparisons'])} comparisons exceed tolerance")
    assert f"{twin} vs scratch layer 3 inference Z3" in out.splitlines()[0]
