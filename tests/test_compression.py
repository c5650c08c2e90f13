"""tnml.compress and the low-rank layer, checked against dense computation: the reported errors
are the measured ones, the budget holds, the original is untouched, healing keeps its best
state, and a saved compressed model loads back to the same outputs."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

import tnml
from tnml.compression.allocate import allocate
from tnml.compression.api import _input_grams, _split
from tnml.compression.methods import (
    Candidate,
    build,
    candidates,
    fit_two_cores,
    refine_two_cores,
)
from tnml.compression.store import load_compressed, save_compressed
from tnml.exceptions import InvalidInputError
from tnml.nn import LowRankLinear, TTLinear

F64 = torch.float64


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(24, 48), nn.ReLU(), nn.Linear(48, 32), nn.Tanh(), nn.Linear(32, 6)
    )


def batches(n: int = 12, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 24, generator=g) for _ in range(n)]


# ---- the low-rank layer -------------------------------------------------------------------


def test_low_rank_full_rank_reproduces_and_truncation_is_eckart_young() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(20, 12, dtype=F64)
    full = LowRankLinear.from_linear(linear)
    torch.testing.assert_close(full.weight(), linear.weight, rtol=0, atol=1e-12)
    x = torch.randn(5, 3, 20, dtype=F64)
    torch.testing.assert_close(full(x), linear(x), rtol=0, atol=1e-12)
    s = torch.linalg.svdvals(linear.weight.detach())
    for rank in (1, 4, 11):
        layer = LowRankLinear.from_linear(linear, rank=rank)
        err = (layer.weight() - linear.weight).pow(2).sum()
        torch.testing.assert_close(err, s[rank:].pow(2).sum(), rtol=1e-10, atol=1e-12)
        assert layer.parameter_count() == rank * 32 + 12
        torch.testing.assert_close(layer.to_linear()(x), layer(x), rtol=0, atol=1e-12)


def test_low_rank_gradients_agree_with_the_dense_weight() -> None:
    torch.manual_seed(0)
    layer = LowRankLinear(10, 7, 3, dtype=F64)
    x = torch.randn(4, 10, dtype=F64)
    layer(x).pow(2).sum().backward()
    w = layer.weight().detach().requires_grad_()
    (x @ w.T + layer.bias.detach()).pow(2).sum().backward()
    # dL/dU = dL/dW V^T and dL/dV = U^T dL/dW
    torch.testing.assert_close(layer.second.grad, w.grad @ layer.first.detach().T)
    torch.testing.assert_close(layer.first.grad, layer.second.detach().T @ w.grad)


def test_layers_run_under_autocast_and_compile() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    x = torch.randn(8, 64)
    for layer in (
        TTLinear.from_linear(linear, in_modes=[8, 8], out_modes=[8, 4]),
        LowRankLinear.from_linear(linear),
    ):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        assert y.dtype == torch.bfloat16
        torch.testing.assert_close(y.float(), linear(x), rtol=0.05, atol=0.05)
        compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
        torch.testing.assert_close(compiled(x), layer(x))
        compiled(x).sum().backward()  # through the compiled graph


def test_tt_layer_rebuilds_from_explicit_ranks() -> None:
    layer = TTLinear(24, 35, in_modes=[2, 3, 4], out_modes=[5, 7, 1], ranks=[3, 2])
    assert layer.ranks == [3, 2] and layer.max_bond == 3
    assert [tuple(c.shape) for c in layer.cores] == [(1, 5, 2, 3), (3, 7, 3, 2), (2, 1, 4, 1)]
    with pytest.raises(InvalidInputError, match="ranks must hold 2"):
        TTLinear(24, 35, in_modes=[2, 3, 4], out_modes=[5, 7, 1], ranks=[3])


# ---- candidate tables and allocation -------------------------------------------------------


@pytest.mark.parametrize(("method", "n_cores"), [("svd", 2), ("mpo", 2), ("mpo", 3)])
def test_candidate_errors_are_the_measured_output_errors(method: str, n_cores: int) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(24, 48)
    x = torch.randn(200, 24, dtype=F64) * torch.linspace(0.1, 3, 24, dtype=F64)
    gram = x.T @ x
    table = candidates(linear, method, gram, n_cores)
    assert table and all(a.params < b.params for a, b in itertools.pairwise(table))
    dense = 24 * 48 + 48
    assert table[-1].params < dense
    w = linear.weight.detach().double()
    for cand in table[:: max(1, len(table) // 5)]:
        layer = build(linear, method, cand.size, n_cores, gram).double()
        assert sum(p.numel() for p in layer.parameters()) == cand.params
        out = x @ (w - layer.weight().detach()).T
        measured = out.pow(2).sum() / (x @ w.T).pow(2).sum()
        assert cand.error == pytest.approx(float(measured), rel=1e-5, abs=1e-9)


def test_allocation_spends_within_the_budget_and_leaves_no_fitting_improvement() -> None:
    rng = np.random.default_rng(0)
    tables = []
    for _ in range(3):
        params = np.cumsum(rng.integers(5, 30, size=6))
        errors = np.sort(rng.random(6))[::-1]
        tables.append(
            [
                Candidate(i, int(p), int(p), float(e))
                for i, (p, e) in enumerate(zip(params, errors, strict=True))
            ]
        )
    for budget in (40, 80, 120, 200):
        try:
            picks = allocate(tables, budget)
        except InvalidInputError:
            assert sum(t[0].params for t in tables) > budget
            continue
        spent = sum(p.params for p in picks)
        assert spent <= budget
        for table, pick in zip(tables, picks, strict=True):
            for c in table:  # no single change that fits lowers the error
                assert c.error >= pick.error or spent - pick.params + c.params > budget
        best = min(
            sum(c.error for c in combo)
            for combo in itertools.product(*tables)
            if sum(c.params for c in combo) <= budget
        )
        assert sum(p.error for p in picks) <= best + 0.5
    with pytest.raises(InvalidInputError, match="below the"):
        allocate(tables, 1)


def test_allocation_spends_what_the_hull_steps_leave() -> None:
    a = [Candidate(1, 10, 10, 1.0), Candidate(2, 20, 20, 0.95), Candidate(3, 100, 100, 0.0)]
    b = [Candidate(1, 10, 10, 1.0)]
    assert allocate([a, b], 35) == [a[1], b[0]]


# ---- compress --------------------------------------------------------------------------------


def test_compress_leaves_the_model_its_state_modes_and_hooks() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(24, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 6)
    )
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(5, 24)
    model.eval()
    y = model(x)
    model.train()
    tnml.compress(model, ratio=2.0, heal_data=batches(6), heal_steps=5)
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    model.eval()
    torch.testing.assert_close(model(x), y, rtol=0, atol=0)

    def broken(output, batch):
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        tnml.compress(model, ratio=2.0, heal_data=batches(4), heal_steps=5, output_fn=broken)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_a_linear_under_two_names_is_replaced_under_both() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 24), nn.ReLU())
    model.add_module("again", model[0])
    compressed, report = tnml.compress(model, ratio=4.0, method="svd")
    assert compressed[0] is compressed.again and isinstance(compressed.again, LowRankLinear)
    assert report.model_params_after == sum(p.numel() for p in compressed.parameters())
    assert report.model_params_after * 3 < report.model_params_before


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_compress_and_heal(dtype: torch.dtype) -> None:
    model = mlp().to(dtype)
    data = [b.to(dtype) for b in batches(8)]
    for method in ("mpo", "svd"):
        compressed, report = tnml.compress(model, ratio=2.0, method=method)
        assert all(p.dtype == dtype for p in compressed.parameters())
        compressed, report = tnml.compress(
            model,
            ratio=2.0,
            method=method,
            heal_data=data,
            heal_steps=10,
            eval_every=5,
            heal_lr=1e-3,
        )
        assert all(p.dtype == dtype for p in compressed.parameters())
        assert all(np.isfinite(v) for _, _, v in report.heal.history)
        assert report.heal.best_val_loss <= report.heal.history[0][2]


def test_compress_leaves_the_model_untouched_and_meets_the_ratio() -> None:
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ("mpo", "svd"):
        compressed, report = tnml.compress(model, ratio=3.0, method=method)
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k])
        assert all(type(m) is not nn.Linear for m in compressed.modules())
        replaced = sum(
            p.numel()
            for m in compressed.modules()
            if isinstance(m, (TTLinear, LowRankLinear))
            for p in m.parameters()
        )
        assert report.params_after == replaced
        assert report.params_before == sum(p.numel() for p in model.parameters())
        assert report.params_before / report.params_after >= 3.0
        assert report.heal is None and report.latency_ms_after is None


def test_reported_layer_errors_are_measured_on_the_calibration_data() -> None:
    model = mlp()
    data = batches()
    compressed, report = tnml.compress(
        model, ratio=2.0, method="svd", heal_data=data, heal_steps=0, calibration_batches=3
    )
    calibration = torch.cat(data[1:4])  # the first batch is held out for validation
    x = calibration.double()
    lin, new = model[0], compressed[0]
    w = lin.weight.detach().double()
    diff = x @ (w - new.weight().detach().double()).T
    measured = diff.pow(2).sum() / (x @ w.T).pow(2).sum()
    assert report.layers[0].error == pytest.approx(float(measured), rel=1e-6)


def test_healing_lowers_the_loss_and_keeps_the_best_state() -> None:
    model = mlp()
    data = batches(20)
    compressed, report = tnml.compress(
        model,
        ratio=4.0,
        method="mpo",
        heal_data=data,
        heal_steps=60,
        eval_every=10,
        heal_lr=3e-3,
        patience=100,
    )
    heal = report.heal
    assert heal.best_val_loss < heal.history[0][2]
    assert heal.best_step > 0 and heal.steps == 60
    assert report.latency_ms_before > 0 and report.latency_ms_after > 0
    from tnml.compression.heal import HealResult, distill

    # the returned model is in its best validated state: re-measure the validation loss
    probe = distill(
        compressed,
        model,
        data[2:],
        data[:2],
        steps=1,
        lr=0.0,
        hidden=[n for n, _ in compressed.named_children() if n in "024"],
    )
    assert isinstance(probe, HealResult)
    assert probe.history[0][2] == pytest.approx(heal.best_val_loss, rel=1e-5)


def test_uniform_allocation_and_flop_budget() -> None:
    model = mlp()
    _, report = tnml.compress(model, ratio=2.5, method="svd", allocation="uniform")
    for layer in report.layers:
        assert layer.params_before / layer.params_after >= 2.5
    _, report = tnml.compress(model, ratio=2.0, method="svd", cost="flops")
    assert (
        sum(r.flops_before for r in report.layers) / sum(r.flops_after for r in report.layers)
        >= 2.0
    )


def test_metric_is_measured_before_after_replacement_and_after_healing() -> None:
    model = mlp()
    data = batches()
    probe = torch.cat(data)
    target = model(probe).detach()

    def closeness(m: nn.Module) -> float:
        with torch.no_grad():
            return float(nn.functional.cosine_similarity(m(probe), target).mean())

    _, report = tnml.compress(
        model, ratio=3.0, heal_data=data, heal_steps=30, heal_lr=3e-3, metric=closeness
    )
    assert report.metric_before == pytest.approx(1.0)
    assert report.metric_truncated < 1.0
    assert report.metric_after >= report.metric_truncated - 1e-6
    assert "metric after healing" in str(report)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratio": 1.0}, "ratio must be a number greater than 1"),
        ({"ratio": 0.5}, "ratio must be a number greater than 1"),
        ({"ratio": "4"}, "ratio must be a number greater than 1"),
        ({"layers": "decoder.*"}, "pattern 'decoder.\\*' matches no torch.nn.Linear"),
        ({"ratio": 1e6}, "budget"),
        ({"method": "cp"}, "method must be one of"),
        ({"heal_data": [torch.randn(4, 24)]}, "at least 2 batches"),
        ({"cost": "time"}, "cost must be"),
        ({"max_val_batches": 0}, "max_val_batches"),
    ],
)
def test_bad_input_is_named(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        tnml.compress(mlp(), **kwargs)


def test_validation_holds_out_a_tenth_of_the_batches_and_at_most_max_val_batches() -> None:
    # every evaluation runs all validation batches: a tenth of 400 would cost more than the
    # 25 training steps between evaluations
    train, val = _split(range(400), 0.1, 16)
    assert val == list(range(16)) and train == list(range(16, 400))
    assert len(_split(range(50), 0.1, 16)[1]) == 5
    assert _split(range(2), 0.9, 16) == ([1], [0])  # one batch always trains


def test_heal_data_with_nan_is_refused_and_reports_are_strict_json() -> None:
    data = batches(20)
    data[3] = data[3].clone()
    data[3][1, 2] = float("nan")
    with pytest.raises(InvalidInputError, match="batch 3 holds NaN or inf"):
        tnml.compress(mlp(), 2.0, "svd", heal_data=data, heal_steps=1)
    keyed = [{"x": b} for b in batches(20)]
    keyed[0]["x"] = keyed[0]["x"].clone()
    keyed[0]["x"][0, 0] = float("inf")
    with pytest.raises(InvalidInputError, match="batch 0 holds NaN or inf"):
        tnml.compress(mlp(), 2.0, "svd", heal_data=keyed, heal_steps=1)
    # nested batches and mappings that are not dicts (a Hugging Face BatchEncoding) too
    from collections import UserDict

    bad = batches(1)[0].clone()
    bad[0, 0] = float("nan")
    for nested in (((bad,),), UserDict(x=bad), [{"x": bad}], {"x": [bad]}):
        with pytest.raises(InvalidInputError, match="batch 1 holds NaN or inf"):
            _split([batches(1)[0], nested, batches(1)[0]], 0.1, 16)
    # a value that is not a finite number is None in to_dict (strict JSON has no NaN)
    _, report = tnml.compress(mlp(), 2.0, "svd", heal_data=batches(20), heal_steps=1)
    report.metric_before = float("nan")
    data_out = report.to_dict()
    assert data_out["metric_before"] is None
    json.dumps(data_out, allow_nan=False)


def test_compress_validates_on_at_most_max_val_batches() -> None:
    # which batches the original model sees: one calibration batch, the training step's,
    # and the held-out ones, capped at 5 of the 200 batches
    model, data = mlp(), batches(200)
    seen: set[int] = set()
    model.register_forward_pre_hook(lambda module, args: seen.add(id(args[0])))
    tnml.compress(
        model, 2.0, "svd", heal_data=data, calibration_batches=1, heal_steps=1, max_val_batches=5
    )
    assert seen == {id(b) for b in data[:6]}


# ---- saving and loading -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["mpo", "svd"])
def test_saved_compressed_model_loads_back_to_the_same_outputs(tmp_path, method: str) -> None:
    model = mlp()
    compressed, _ = tnml.compress(model, ratio=3.0, method=method)
    save_compressed(compressed, tmp_path)
    loaded = load_compressed(tmp_path, mlp(seed=5))
    x = torch.randn(7, 24)
    torch.testing.assert_close(loaded(x), compressed(x), rtol=0, atol=0)
    with pytest.raises(InvalidInputError, match="not in the model"):
        load_compressed(tmp_path, nn.Sequential(nn.Linear(24, 6)))


def test_the_workflow_replaces_its_own_output_and_refuses_other_folders(tmp_path) -> None:
    from tnml.workflows.compress import compress_saved_model, load_compressed_model

    torch.save(mlp(), tmp_path / "model.pt")
    out = tmp_path / "out"
    out.mkdir()
    # an earlier run's files (here a Hugging Face model's config.json and the CLI's report)
    # that this run does not write are removed: config.json made the loader rebuild the
    # wrong architecture
    (out / "config.json").write_text("{}")
    (out / "report.json").write_text("{}")
    (out / "compression.json").write_text("{}")
    compress_saved_model(tmp_path / "model.pt", out, ratio=2.0, method="svd")
    assert sorted(p.name for p in out.iterdir()) == [
        "base_module.pt", "compression.json", "model.safetensors"
    ]  # fmt: skip
    x = torch.randn(3, 24)
    assert load_compressed_model(out)(x).shape == (3, 6)
    # a folder with anything else in it is refused before any work, and left as it was
    for folder in (tmp_path / "other", out):
        folder.mkdir(exist_ok=True)
        (folder / "notes.txt").write_text("mine")
        before = sorted(p.name for p in folder.iterdir())
        with pytest.raises(InvalidInputError, match=r"notes\.txt"):
            compress_saved_model(tmp_path / "model.pt", folder, ratio=2.0, method="svd")
        assert sorted(p.name for p in folder.iterdir()) == before
    with pytest.raises(InvalidInputError, match="is a file"):
        compress_saved_model(tmp_path / "model.pt", tmp_path / "other" / "notes.txt", ratio=2.0)
    # a model folder (config.json, model.safetensors) that no compress wrote is refused, and
    # so is the model's own folder
    user_model = tmp_path / "user_model"
    user_model.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (user_model / name).write_text("mine")
    with pytest.raises(InvalidInputError, match="not an earlier tnml compress output"):
        compress_saved_model(tmp_path / "model.pt", user_model, ratio=2.0, method="svd")
    assert all((user_model / n).read_text() == "mine" for n in ("config.json", "vocab.txt"))
    with pytest.raises(InvalidInputError, match="is the model being compressed"):
        compress_saved_model(user_model, user_model, ratio=2.0, method="svd")
    # the current folder, as --out . gives it
    here = tmp_path / "here"
    here.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(here)
        compress_saved_model(tmp_path / "model.pt", ".", ratio=2.0, method="svd")
    finally:
        os.chdir(cwd)
    assert (here / "model.safetensors").is_file()


def test_saved_torch_module_round_trip_through_the_workflow(tmp_path) -> None:
    from tnml.workflows.compress import compress_saved_model, load_compressed_model

    model = mlp()
    model.register_buffer("offset", torch.full((6,), 0.5), persistent=False)
    torch.save(model, tmp_path / "model.pt")
    torch.save(torch.cat(batches(6)), tmp_path / "heal.pt")
    out = tmp_path / "out"
    report = compress_saved_model(
        tmp_path / "model.pt",
        out,
        heal_data=tmp_path / "heal.pt",
        ratio=2.0,
        method="svd",
        heal_steps=0,
    )
    loaded = load_compressed_model(out)
    reference, again = tnml.compress(
        model,
        ratio=2.0,
        method="svd",
        heal_data=list(torch.cat(batches(6)).split(16)),
        heal_steps=0,
    )
    assert [r.ranks for r in report.layers] == [r.ranks for r in again.layers]
    x = torch.randn(3, 24)
    torch.testing.assert_close(loaded(x), reference(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded.offset, model.offset)  # not in the safetensors
    assert (out / "base_module.pt").stat().st_size < 20_000  # no weights in the skeleton


def test_the_readme_compression_snippet_runs(capsys) -> None:
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    snippet = next(b for b in blocks if "tnml.compress(" in b)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    report = namespace["report"]
    assert report.params_before / report.params_after >= 4.0
    assert "mpo compression of 2 layers" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["svd", "mpo"])
def test_fitting_in_the_input_metric_beats_fitting_the_weight(method: str) -> None:
    """With input statistics C = C1 x C2 (exactly Kronecker), the whitened fits can only lower
    the output error; for SVD it is the Eckart-Young optimum in the metric of C."""
    torch.manual_seed(3)
    linear = nn.Linear(24, 48)
    a1, a2 = torch.randn(6, 6, dtype=F64), torch.randn(4, 4, dtype=F64)
    c1, c2 = a1 @ a1.T + 0.1 * torch.eye(6, dtype=F64), a2 @ a2.T + 0.1 * torch.eye(4, dtype=F64)
    gram = torch.kron(c1, c2)
    w = linear.weight.detach().double()

    def error(layer: nn.Module) -> float:
        diff = w - layer.weight().detach().double()
        return float(((diff @ gram) * diff).sum() / ((w @ gram) * w).sum())

    for size in (1, 2, 4, 8):
        fitted, plain = build(linear, method, size, 2, gram), build(linear, method, size, 2)
        assert error(fitted) <= error(plain) + 1e-12
        # inputs far from a Kronecker product (a few strong directions): still no worse
        x = torch.randn(300, 3, dtype=F64) @ torch.randn(3, 24, dtype=F64) * 10
        skewed = (x + 0.1 * torch.randn(300, 24, dtype=F64)).T @ (
            x + 0.1 * torch.randn(300, 24, dtype=F64)
        )
        skewed = (skewed + skewed.T) / 2
        diff_f = w - build(linear, method, size, 2, skewed).weight().detach().double()
        diff_p = w - plain.weight().detach().double()
        assert ((diff_f @ skewed) * diff_f).sum() <= ((diff_p @ skewed) * diff_p).sum() * (
            1 + 1e-6
        )  # float32 rounding of the stored layer
        if method == "svd":
            root = torch.linalg.cholesky(gram)
            s = torch.linalg.svdvals(w @ root)
            assert error(fitted) == pytest.approx(float((s[size:] ** 2).sum() / (s**2).sum()))


def test_cli_bad_heal_data_is_one_line_and_exit_2(tmp_path) -> None:
    from typer.testing import CliRunner

    from tnml.cli import app

    torch.save(mlp(), tmp_path / "model.pt")
    torch.save(torch.randn(64, 7), tmp_path / "wrong.pt")  # 7 features, the model takes 24
    (tmp_path / "corrupt.pt").write_bytes(b"not a tensor file")
    for data, message in (
        ("wrong.pt", "the model rejects batch 0"),
        ("corrupt.pt", "does not load"),
    ):
        result = CliRunner().invoke(
            app,
            [
                "compress",
                str(tmp_path / "model.pt"),
                "--heal-data",
                str(tmp_path / data),
                "--out",
                str(tmp_path / "out"),
                "-q",
            ],
        )
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith("error: heal_data") and message in lines[0]


# ---- two cores refined in the input metric --------------------------------------------------


def _metric_error(w: torch.Tensor, approx: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    diff = w - approx
    return ((diff @ gram) * diff).sum() / ((w @ gram) * w).sum()


def _general_gram(n: int, seed: int) -> torch.Tensor:
    """Input statistics far from any Kronecker product: a few strong directions plus noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(400, 3, generator=g, dtype=F64) @ torch.randn(3, n, generator=g, dtype=F64)
    x = 5 * x + 0.3 * torch.randn(400, n, generator=g, dtype=F64)
    return x.T @ x


def test_refinement_lowers_the_error_and_each_half_step_is_an_exact_minimiser() -> None:
    """Alternating least squares in a general metric: the error falls with every sweep, far
    below the TT-SVD start, and the second core, updated last, is an exact minimiser given the
    first (the gradient of the metric error in it vanishes, checked by autograd)."""
    torch.manual_seed(5)
    w = torch.randn(12, 20, dtype=F64)  # out 4x3, in 5x4
    gram = _general_gram(20, 0)
    for rank in (1, 3, 6):
        start, start_error = fit_two_cores(w, [5, 4], [4, 3], rank, gram, refine=False)
        errors = []
        for sweeps in (1, 5, 25):
            first, second = refine_two_cores(w, *start, gram, sweeps=sweeps, tol=0.0, ridge=0.0)
            a = first.clone().requires_grad_()
            b = second.clone().requires_grad_()
            err = _metric_error(w, torch.einsum("xmar,rnby->mnab", a, b).reshape(12, 20), gram)
            grad_b = torch.autograd.grad(err, b)[0]
            assert grad_b.norm().item() < 1e-9
            errors.append(err.item())
        assert errors[0] < 0.5 * start_error  # a non-Kronecker metric: the start is far off
        assert errors[2] <= errors[1] <= errors[0]


def test_refinement_keeps_the_optimum_where_the_tt_svd_is_exact() -> None:
    """In a Kronecker metric C1 x C2 the whitened TT-SVD is the optimum (Eckart-Young on the
    whitened rearrangement): the refinement cannot beat it, and keeps it."""
    torch.manual_seed(6)
    w = torch.randn(12, 20, dtype=F64)
    a1, a2 = torch.randn(5, 5, dtype=F64), torch.randn(4, 4, dtype=F64)
    c1 = a1 @ a1.T + 0.1 * torch.eye(5, dtype=F64)
    c2 = a2 @ a2.T + 0.1 * torch.eye(4, dtype=F64)
    gram = torch.kron(c1, c2)
    l1, l2 = torch.linalg.cholesky(c1), torch.linalg.cholesky(c2)
    whitened = torch.einsum("xyab,ac,bd->xycd", w.reshape(4, 3, 5, 4), l1, l2)
    s = torch.linalg.svdvals(whitened.permute(0, 2, 1, 3).reshape(20, 12))
    for rank in (1, 2, 5):
        optimum = float((s[rank:] ** 2).sum() / (s**2).sum())
        start, start_error = fit_two_cores(w, [5, 4], [4, 3], rank, gram, refine=False)
        assert start_error == pytest.approx(optimum, rel=1e-8, abs=1e-14)
        first, second = refine_two_cores(w, *start, gram, ridge=0.0)
        approx = torch.einsum("xmar,rnby->mnab", first, second).reshape(12, 20)
        assert _metric_error(w, approx, gram).item() == pytest.approx(optimum, rel=1e-8, abs=1e-14)


def test_refinement_does_not_blow_up_where_calibration_inputs_are_few() -> None:
    """Fewer calibration inputs than features leave directions C never sees: the ridge keeps
    the cores bounded, and with a held-out Gram the refinement is kept only where it fits
    those inputs better, so the held-out error never rises above the TT-SVD's."""
    torch.manual_seed(0)
    w = torch.randn(64, 64, dtype=F64)
    mix = torch.randn(64, 64, dtype=F64)

    def gram_of(k: int) -> torch.Tensor:
        x = torch.randn(k, 64, dtype=F64) @ mix
        return x.T @ x

    held_out = gram_of(20_000)
    for k in (16, 40, 2000):
        calibration, check = gram_of(k), gram_of(k)
        start, _ = fit_two_cores(w, [8, 8], [8, 8], 4, calibration, refine=False)
        kept, _ = fit_two_cores(w, [8, 8], [8, 8], 4, calibration, check_gram=check)

        def held(cores: tuple[torch.Tensor, torch.Tensor]) -> float:
            return _metric_error(
                w, torch.einsum("xmar,rnby->mnab", *cores).reshape(64, 64), held_out
            ).item()

        assert held(kept) <= held(start) * 1.05
        refined = refine_two_cores(w, *start, calibration)
        assert max(c.abs().max().item() for c in refined) < 10 * max(
            c.abs().max().item() for c in start
        )
    assert held(kept) < held(start)  # with enough inputs the refinement is kept and helps


def test_compress_mpo_takes_the_svd_profiles_budgets_and_reports_measured_errors() -> None:
    """With calibration data, each MPO layer gets at most the parameters the SVD's profile gives
    the same layer (equal parameters, layer by layer), is fitted in its input metric (no worse
    than the TT-SVD), and the report's error is the layer's measured one."""
    model = mlp(0)
    data = batches(12)
    _, svd_report = tnml.compress(model, ratio=3.0, method="svd", heal_data=data, heal_steps=0)
    compressed, report = tnml.compress(model, ratio=3.0, method="mpo", heal_data=data, heal_steps=0)
    assert report.params_after <= svd_report.params_after
    assert report.params_before / report.params_after >= 3.0
    grams = _input_grams(model, ["0", "2", "4"], data[1:9])  # the first batch validates
    for mpo_layer, svd_layer in zip(report.layers, svd_report.layers, strict=True):
        assert mpo_layer.params_after <= svd_layer.params_after
        lin, new = model.get_submodule(mpo_layer.name), compressed.get_submodule(mpo_layer.name)
        assert isinstance(new, TTLinear)
        w = lin.weight.detach().double()
        gram = grams[mpo_layer.name]
        measured = float(_metric_error(w, new.weight().detach().double(), gram))
        assert mpo_layer.error == pytest.approx(measured, rel=1e-4, abs=1e-7)
        unrefined = build(lin, "mpo", new.ranks[0], 2, gram).weight().detach().double()
        assert measured <= float(_metric_error(w, unrefined, gram)) * (1 + 1e-5) + 1e-9


def test_mpo_falls_back_to_its_own_tables_where_the_svd_shares_do_not_fit() -> None:
    """A layer SVD cannot shrink (one output) or a share below the smallest TT: the TT tables
    allocate, so the budget holds or the ratio is refused, never exceeded silently."""
    torch.manual_seed(0)
    narrow = nn.Sequential(nn.Linear(64, 1))
    data = [torch.randn(16, 64) for _ in range(6)]
    _, report = tnml.compress(narrow, ratio=2.0, method="mpo", heal_data=data, heal_steps=0)
    assert report.params_after * 2.0 <= report.params_before
    square = nn.Sequential(nn.Linear(12, 12, bias=False))
    data = [torch.randn(16, 12) for _ in range(6)]
    _, report = tnml.compress(square, ratio=4.0, method="mpo", heal_data=data, heal_steps=0)
    assert report.params_after * 4.0 <= report.params_before
    with pytest.raises(InvalidInputError, match="ratio: the budget of 24 params is below"):
        tnml.compress(square, ratio=6.0, method="mpo", heal_data=data, heal_steps=0)
