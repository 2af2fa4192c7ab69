"""Each method on tiny models of every family: reload, error vs rank, whitening identity, held-out error.

The "Must show" list of issue 3, (a) to (e), on config-built models (fast).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import tuneyard
from tuneyard.compress.calibration import load_calibration
from tuneyard.compress.compressor import compress_model
from tuneyard.compress.factorize import weighted_svds
from tuneyard.compress.options import CompressOptions
from tuneyard.compress.registry import METHODS, build_method
from tuneyard.compress.statistics import collect_fisher, collect_input_statistics
from tuneyard.models.layout import layout_of
from tuneyard.models.lowrank import LowRankLinear, compressible_modules, linear_weight
from tuneyard.yard.root import Yard

TINY = ("bert", "roberta", "modernbert", "gpt2", "llama")
# The real all-MiniLM-L6-v2 (a bare BERT encoder) on the real Debian topics data: slow.
ARCHS = (*TINY, pytest.param("minilm", marks=pytest.mark.slow))
DEBIAN_TOPICS = Path(__file__).resolve().parents[2] / "data" / "debian_topics"
SENTENCES = ["the movie was great fun", "a dull and boring plot", "the actor was clever", "cold grim ending"]


def _inputs(model_dir: Path) -> dict[str, torch.Tensor]:
    from tuneyard.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    return dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))


@pytest.fixture(scope="module")
def model_and_data(tiny_model, sentiment_data, minilm):  # type: ignore[no-untyped-def]
    """``get(arch)`` -> (model folder, calibration data folder)."""

    def get(arch: str) -> tuple[Path, Path]:
        if arch == "minilm":
            return minilm, DEBIAN_TOPICS
        return tiny_model(arch), sentiment_data

    return get


def _compress(tmp_path: Path, model_dir: Path, data: Path, **options: object):  # type: ignore[no-untyped-def]
    opts = CompressOptions(model=str(model_dir), data=str(data), calib_samples=64, **options)
    return compress_model(opts, Yard.open(tmp_path))


def _base_and_calibration(model_dir: Path, data: Path, samples: int = 64) -> tuple[torch.nn.Module, object]:
    """The dense model as compress loads it (a classifier sized for the data), and calibration batches."""
    from tuneyard.models.loading import load_tokenizer
    from tuneyard.task_types import get_task_type

    calibration = load_calibration(load_tokenizer(model_dir), None, data, samples, 16, 128, seed=0)
    model = get_task_type().compression.load_for_compression(str(model_dir), calibration.spec, seed=0).model
    return model, calibration


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("rank", [3, 10])
def test_reload_is_bit_identical_and_counts_match_tensors(tmp_path, model_and_data, arch, method, rank):
    result = _compress(tmp_path, *model_and_data(arch), rank=str(rank), method=method)

    # (a) the folder alone rebuilds the model: same logits, bit for bit.
    reloaded = tuneyard.load(result.path)
    batch = _inputs(result.path)
    with torch.no_grad():
        assert torch.equal(result.model(**batch).logits, reloaded(**batch).logits)
    assert not reloaded.training

    info = json.loads((result.path / "compression_info.json").read_text())
    lowrank = {name: module for name, module in reloaded.named_modules() if isinstance(module, LowRankLinear)}
    assert set(lowrank) == set(info["layers"]) and len(lowrank) > 0
    assert {name: module.rank for name, module in lowrank.items()} == {
        name: layer["rank"] for name, layer in info["layers"].items()
    }
    if method != "adasvd":
        assert {layer["rank"] for layer in info["layers"].values()} == {rank}

    # (e) the parameter counts in compression_info.json are those of the saved tensors.
    with safe_open(str(result.path / "model.safetensors"), framework="pt") as handle:
        shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}  # noqa: SIM118
    saved = sum(torch.Size(shape).numel() for shape in shapes.values())
    assert info["params"]["total_after"] == saved
    for name, layer in info["layers"].items():
        stored = torch.Size(shapes[f"{name}.left"]).numel() + torch.Size(shapes[f"{name}.right"]).numel()
        assert layer["params_after"] == stored == layer["rank"] * sum(layer["shape"])
    assert info["params"]["total_before"] - info["params"]["total_after"] == sum(
        layer["params_before"] - layer["params_after"] for layer in info["layers"].values()
    )
    assert info["method"] == method and info["arch"] == ("bert" if arch == "minilm" else arch)


class _LayerData:
    """A model's compressible weights and its calibration statistics, for layer-level checks."""

    def __init__(self, model_dir: Path, data: Path) -> None:
        self.model, calibration = _base_and_calibration(model_dir, data, samples=32)
        self.modules = compressible_modules(self.model, layout_of(self.model))
        self.weights = {name: linear_weight(module).detach() for name, module in self.modules.items()}
        self.batches = batches = calibration.batches  # type: ignore[attr-defined]
        self.stats = collect_input_statistics(self.model, self.modules, batches, gram=True, abs_mean=True)
        # Layers reading one input (query / key / value) share a LayerStatistics object: give
        # each its own, or every sibling would end up with the last sibling's Fisher weights.
        from dataclasses import replace

        for name, fisher in collect_fisher(self.model, self.modules, batches).items():
            self.stats[name] = replace(self.stats[name], fisher=fisher)


@pytest.fixture(scope="module")
def layer_data(model_and_data):  # type: ignore[no-untyped-def]
    cache: dict[str, _LayerData] = {}

    def get(arch: str) -> _LayerData:
        if arch not in cache:
            cache[arch] = _LayerData(*model_and_data(arch))
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", list(METHODS))
def test_error_falls_with_rank_and_vanishes_at_full_rank(layer_data, arch, method):
    """(b) each method's own weighted error ||(W - W')S||_F shrinks as rank grows, ~0 at full rank."""
    data = layer_data(arch)
    svds = weighted_svds(build_method(method), data.weights, data.stats)
    for name, weight in data.weights.items():
        svd = svds[name]
        full = min(weight.shape)
        ranks = sorted({1, 2, 4, 8, full // 2, full})
        errors = []
        for rank in ranks:
            left, right = svd.factors(rank)
            delta = weight.to(left.dtype) - left @ right
            errors.append(float(torch.linalg.matrix_norm(svd.weighting.apply(delta))))
        scale = float(torch.linalg.matrix_norm(svd.weighting.apply(weight.to(left.dtype))))
        assert all(later < earlier for earlier, later in itertools.pairwise(errors)), (name, errors)
        assert errors[-1] <= 1e-5 * scale, (name, errors[-1], scale)
        plain = torch.linalg.matrix_norm(
            weight.double() - (left @ right).double()
        ) / torch.linalg.matrix_norm(weight.double())
        assert plain < 1e-4, (name, float(plain))


def _layer_inputs(model: torch.nn.Module, modules: dict, batches: list) -> dict[str, torch.Tensor]:
    """Every layer's input rows (padding removed), captured independently of tuneyard's statistics."""
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    mask: list[torch.Tensor] = []

    def hook_for(name: str):  # type: ignore[no-untyped-def]
        def hook(_module, inputs):  # type: ignore[no-untyped-def]
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
            rows[name].append(x[mask[0]])

        return hook

    handles = [module.register_forward_pre_hook(hook_for(name)) for name, module in modules.items()]
    with torch.no_grad():
        for batch in batches:
            mask[:] = [batch["attention_mask"].reshape(-1).bool()]
            model(**{key: value for key, value in batch.items() if key != "labels"})
    for handle in handles:
        handle.remove()
    return {name: torch.cat(parts) for name, parts in rows.items()}


def _fisher_by_autograd(model: torch.nn.Module, modules: dict, batches: list) -> dict[str, torch.Tensor]:
    """Per input feature, sum over batches and output rows of (dL/dW)^2, with plain autograd."""
    weights = [module.weight for module in modules.values()]
    totals = {name: torch.zeros((), dtype=torch.float64) for name in modules}
    for batch in batches:
        gradients = torch.autograd.grad(model(**batch).loss, weights)
        for (name, module), gradient in zip(modules.items(), gradients, strict=True):
            # GPT-2's Conv1D stores its weight as (in, out): turn it to (out, in) first
            out_by_in = gradient.T if type(module).__name__ == "Conv1D" else gradient
            totals[name] = totals[name] + out_by_in.double().pow(2).sum(0)
    return totals


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_asvd_scales_and_fisher_weights_match_an_independent_computation(layer_data, arch):
    """ASVD's S = diag(mean|x|^alpha) over real (unpadded) tokens; fwsvd's S = diag(sqrt(sum grad^2))."""
    data = layer_data(arch)
    inputs = _layer_inputs(data.model, data.modules, data.batches)
    fisher = _fisher_by_autograd(data.model, data.modules, data.batches)
    tokens = int(sum(batch["attention_mask"].sum() for batch in data.batches))
    for name, weight in data.weights.items():
        assert inputs[name].shape == (tokens, weight.shape[1]), name  # padding left out
        for alpha in (0.5, 0.75):
            expected = inputs[name].abs().mean(0).pow(alpha)
            weighting = build_method("asvd", alpha=alpha).weighting(weight, data.stats[name])
            torch.testing.assert_close(weighting.scale, expected, rtol=1e-5, atol=1e-8, msg=name)
            torch.testing.assert_close(
                weighting.apply(weight.double()), weight.double() * expected, rtol=1e-5, atol=1e-8
            )
        expected = fisher[name].sqrt()
        assert expected.shape == (weight.shape[1],) and float(expected.min()) > 0, name
        scale = build_method("fwsvd").weighting(weight, data.stats[name]).scale
        torch.testing.assert_close(scale, expected, rtol=1e-4, atol=0.0, msg=name)


@dataclass
class _CalibrationEnergy:
    """Each dense layer's weight ``W``, the Gram matrix ``X^T X`` of its calibration inputs (captured
    by the test's own hooks) and the singular values of ``W S`` for any ``S S^T = X^T X``, in float64.

    None of it depends on the rank: built once per model, it serves the three ranks.
    """

    weights: dict[str, torch.Tensor]
    grams: dict[str, torch.Tensor]
    sigmas: dict[str, torch.Tensor]

    @classmethod
    def measure(cls, model_dir: Path, data: Path) -> _CalibrationEnergy:
        base, calibration = _base_and_calibration(model_dir, data)
        modules = compressible_modules(base, layout_of(base))
        inputs = _layer_inputs(base, modules, calibration.batches)  # type: ignore[attr-defined]
        weights, grams, sigmas = {}, {}, {}
        for name, x in inputs.items():
            weights[name] = linear_weight(modules[name]).detach().double()
            grams[name] = x.T @ x
            # Any S with S S^T = X^T X gives the same singular values; the symmetric square
            # root also exists when X^T X is singular (ModernBERT's bias-free LayerNorm).
            eigenvalues, eigenvectors = torch.linalg.eigh(grams[name])
            root = eigenvectors * eigenvalues.clamp_min(0).sqrt()
            sigmas[name] = torch.linalg.svdvals(weights[name] @ root)
        return cls(weights, grams, sigmas)


@pytest.fixture(scope="module")
def calibration_energy(model_and_data):  # type: ignore[no-untyped-def]
    """``get(arch)`` -> the arch's :class:`_CalibrationEnergy` (cached for the module)."""
    cache: dict[str, _CalibrationEnergy] = {}

    def get(arch: str) -> _CalibrationEnergy:
        if arch not in cache:
            cache[arch] = _CalibrationEnergy.measure(*model_and_data(arch))
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rank", [2, 6, 12])
def test_whiten_output_error_is_the_discarded_singular_energy(
    tmp_path, model_and_data, calibration_energy, arch, rank
):
    """(c) on the calibration inputs, ||(W - W')X||_F^2 = sum of discarded sigma_i(W S)^2."""
    result = _compress(tmp_path, *model_and_data(arch), method="whiten", rank=str(rank))
    dense = calibration_energy(arch)
    compressed = dict(result.model.named_modules())
    for name, gram in dense.grams.items():
        delta = dense.weights[name] - compressed[name].dense_weight().detach().double()
        error = float((delta @ gram * delta).sum())  # ||delta X^T||_F^2 = tr(delta X^T X delta^T)
        discarded = float(dense.sigmas[name][rank:].pow(2).sum())
        assert error == pytest.approx(discarded, rel=1e-3), name


@pytest.mark.parametrize("arch", ARCHS)
def test_data_aware_methods_beat_standard_on_their_objective(tmp_path, model_and_data, arch):
    """(d) held-out output error: whiten < standard; Fisher-weighted error: fwsvd < standard."""
    from tuneyard.models.loading import load_tokenizer

    model_dir, data = model_and_data(arch)
    made = {
        m: _compress(tmp_path, model_dir, data, method=m, rank="4").model
        for m in ("standard", "whiten", "fwsvd")
    }
    base, calibration = _base_and_calibration(model_dir, data)
    # A headless base got a linear-probe head before fwsvd measured Fisher: give the dense
    # model that same head (every tensor fwsvd did not factorise is the dense model's).
    dense_state = base.state_dict()
    base.load_state_dict(
        {key: value for key, value in made["fwsvd"].state_dict().items() if key in dense_state}, strict=False
    )
    modules = compressible_modules(base, layout_of(base))
    # Held-out: rows of the validation split, which calibration never reads.
    tokenizer = load_tokenizer(model_dir)
    validation = [
        dict(tokenizer(rows, padding=True, truncation=True, max_length=128, return_tensors="pt"))
        for rows in _validation_texts(data)
    ]
    inputs = _layer_inputs(base, modules, validation)
    fisher = collect_fisher(base, modules, calibration.batches)  # type: ignore[attr-defined]

    def delta(method: str, name: str) -> torch.Tensor:
        approx = dict(made[method].named_modules())[name].dense_weight()
        return (linear_weight(modules[name]) - approx).detach().double()

    def output_error(method: str) -> float:
        return sum(float((delta(method, name) @ x.T).pow(2).sum()) for name, x in inputs.items())

    def fisher_error(method: str, name: str) -> float:
        return float((delta(method, name).pow(2) * fisher[name]).sum())

    assert output_error("whiten") < output_error("standard")
    for name in modules:
        assert fisher_error("fwsvd", name) < fisher_error("standard", name), name


def _validation_texts(data: Path, rows: int = 64) -> list[list[str]]:
    import csv

    with open(data / "validation.csv") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)][:rows]
    return [texts[start : start + 16] for start in range(0, len(texts), 16)]
