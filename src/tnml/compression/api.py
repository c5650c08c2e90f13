"""``tnml.compress``: replace a model's Linear layers by tensor-train (MPO) or low-rank (SVD)
layers under one parameter budget, then heal by distillation against the original."""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.compression.allocate import allocate
from tnml.compression.heal import HealResult, call_model, default_output, distill
from tnml.compression.methods import (
    ALS_MAX_SYSTEM,
    METHODS,
    Candidate,
    build,
    candidates,
    refinable,
    relative_error,
    two_core_size,
)
from tnml.compression.select import replace_module, select_linear_layers
from tnml.exceptions import InvalidInputError
from tnml.nn.lowrank import LowRankLinear
from tnml.nn.tt import TTLinear

__all__ = ["CompressionReport", "LayerReport", "compress", "layer_spec"]


@dataclass
class LayerReport:
    """One replaced layer: sizes before and after, the kept rank(s), the relative output error
    of the replacement before healing (on calibration inputs when given)."""

    name: str
    shape: tuple[int, int]  # (out_features, in_features)
    method: str
    ranks: list[int]
    params_before: int
    params_after: int
    flops_before: int  # multiply-adds per input
    flops_after: int
    error: float


@dataclass
class CompressionReport:
    """What :func:`compress` did, per layer and in total."""

    method: str
    ratio: float
    layers: list[LayerReport]
    model_params_before: int
    model_params_after: int
    metric_before: float | None = None
    metric_truncated: float | None = None  # after replacement, before healing
    metric_after: float | None = None
    latency_ms_before: float | None = None
    latency_ms_after: float | None = None
    heal: HealResult | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def params_before(self) -> int:
        """Parameters of the replaced layers before."""
        return sum(r.params_before for r in self.layers)

    @property
    def params_after(self) -> int:
        return sum(r.params_after for r in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (a value that is not a finite number is None: strict JSON
        has no NaN)."""
        data = asdict(self)
        data["params_before"], data["params_after"] = self.params_before, self.params_after
        return _finite_or_none(data)

    def __str__(self) -> str:
        lines = [
            f"{self.method} compression of {len(self.layers)} layers: "
            f"{self.params_before:,} -> {self.params_after:,} parameters "
            f"({self.params_before / max(self.params_after, 1):.2f}x); model "
            f"{self.model_params_before:,} -> {self.model_params_after:,}",
        ]
        for label, value in (
            ("metric before", self.metric_before),
            ("metric after replacement", self.metric_truncated),
            ("metric after healing", self.metric_after),
            ("latency before (ms)", self.latency_ms_before),
            ("latency after (ms)", self.latency_ms_after),
        ):
            if value is not None:
                lines.append(f"{label}: {value:.4f}")
        if self.heal is not None:
            lines.append(
                f"healing: {self.heal.steps} steps, {self.heal.seconds:.0f} s, best at step "
                f"{self.heal.best_step} (val loss {self.heal.best_val_loss:.4f}); stopped: "
                f"{self.heal.stopped}"
            )
        lines.append(f"{'layer':<48} {'shape':>11} {'ranks':>10} {'params':>17} {'error':>8}")
        for r in self.layers:
            lines.append(
                f"{r.name:<48} {r.shape[0]:>5}x{r.shape[1]:<5} {','.join(map(str, r.ranks)):>10} "
                f"{r.params_before:>8}->{r.params_after:<8} {r.error:8.4f}"
            )
        lines.extend(self.notes)
        return "\n".join(lines)


def layer_spec(name: str, module: nn.Module) -> dict[str, Any]:
    """What rebuilds a compressed layer's shapes (:func:`tnml.compression.store.load`)."""
    if isinstance(module, TTLinear):
        return {
            "name": name,
            "kind": "tt",
            "in_features": module.in_features,
            "out_features": module.out_features,
            "in_modes": module.in_modes,
            "out_modes": module.out_modes,
            "ranks": module.ranks,
            "bias": module.bias is not None,
        }
    if isinstance(module, LowRankLinear):
        return {
            "name": name,
            "kind": "lowrank",
            "in_features": module.in_features,
            "out_features": module.out_features,
            "rank": module.rank,
            "bias": module.bias is not None,
        }
    raise InvalidInputError(f"{name} is not a compressed layer ({type(module).__name__})")


def _input_grams(
    model: nn.Module, names: Sequence[str], batches: Sequence[Any]
) -> dict[str, Tensor]:
    """``X^T X`` (float64) of each named layer's inputs over ``batches``."""
    grams: dict[str, Tensor] = {}

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            g = x.T @ x
            grams[name] = grams[name] + g if name in grams else g

        return hook

    handles = [model.get_submodule(n).register_forward_pre_hook(hook_for(n)) for n in names]
    try:
        with torch.no_grad():
            for i, batch in enumerate(batches):
                try:
                    call_model(model, batch)
                except (RuntimeError, TypeError, ValueError, IndexError) as err:
                    raise InvalidInputError(
                        f"heal_data: the model rejects batch {i}: {' '.join(str(err).split())}"
                    ) from err
    finally:
        for h in handles:
            h.remove()
    return grams


def _latency_ms(model: nn.Module, batch: Any, repeats: int = 5) -> float:
    with torch.no_grad():
        call_model(model, batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call_model(model, batch)
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _finite_or_none(value: Any) -> Any:
    """``value`` with every float that is NaN or infinite, in nested dicts and lists, None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def _batch_tensors(batch: Any) -> list[Tensor]:
    """Every tensor of a batch: itself, or those nested in mappings (anything with
    ``keys()``, as a Hugging Face ``BatchEncoding``), lists and tuples."""
    if isinstance(batch, Tensor):
        return [batch]
    if hasattr(batch, "keys") and callable(batch.keys):
        return [t for key in batch.keys() for t in _batch_tensors(batch[key])]
    if isinstance(batch, (list, tuple)):
        return [t for item in batch for t in _batch_tensors(item)]
    return []


def _split(heal_data: Any, val_fraction: float, max_val_batches: int) -> tuple[list, list]:
    """``(train, validation)`` batches: the first ``val_fraction`` of them, at least one and
    at most ``max_val_batches``, validate. A floating-point tensor with NaN or inf in any
    batch is an error: distillation on it trains the model to NaN."""
    batches = list(heal_data)
    if len(batches) < 2:
        raise InvalidInputError(
            f"heal_data must hold at least 2 batches (train and validation), got {len(batches)}"
        )
    for i, batch in enumerate(batches):
        for tensor in _batch_tensors(batch):
            inexact = tensor.is_floating_point() or tensor.is_complex()
            if inexact and not bool(torch.isfinite(tensor).all()):
                raise InvalidInputError(f"heal_data: batch {i} holds NaN or inf")
    n_val = min(max(1, round(val_fraction * len(batches))), max_val_batches, len(batches) - 1)
    return batches[n_val:], batches[:n_val]


def compress(
    model: nn.Module,
    ratio: float = 4.0,
    method: str = "mpo",
    layers: str | Sequence[str] | None = None,
    heal_data: Sequence[Any] | None = None,
    *,
    cost: str = "params",
    allocation: str = "profile",
    n_cores: int = 2,
    calibration_batches: int = 8,
    heal_steps: int = 300,
    heal_lr: float = 5e-4,
    hidden_weight: float = 1.0,
    val_fraction: float = 0.1,
    max_val_batches: int = 16,
    patience: int = 4,
    eval_every: int = 25,
    max_seconds: float | None = None,
    output_fn: Callable[[Any, Any], Tensor] = default_output,
    metric: Callable[[nn.Module], float] | None = None,
    progress: bool = False,
) -> tuple[nn.Module, CompressionReport]:
    """A copy of ``model`` whose chosen Linear layers carry ``ratio`` times fewer parameters.

    Parameters
    ----------
    model : nn.Module
        Left untouched.
    ratio : float, default=4.0
        Parameters (or multiply-adds, ``cost="flops"``) of the chosen layers before, divided by
        after; must exceed 1.
    method : {"mpo", "svd"}
        ``"mpo"``: :class:`~tnml.nn.TTLinear` by TT-SVD (``n_cores`` cores, near-equal modes;
        two cores with calibration data are then refined in the input metric);
        ``"svd"``: :class:`~tnml.nn.lowrank.LowRankLinear` by truncated SVD, the baseline.
    layers : str or sequence of str, optional
        ``fnmatch`` patterns of layer names; default every ``nn.Linear``.
    heal_data : sequence of batches, optional
        Inputs the model takes (a tensor, a tuple of positional arguments, or a mapping of
        keyword arguments per batch). The first ``val_fraction`` of the batches (at least
        one, at most ``max_val_batches``: each evaluation runs them all, so many would cost
        more than the healing steps between evaluations) are held out: they validate healing
        and decide whether a refined MPO fit is kept. The rest train healing, and the first
        ``calibration_batches`` of those give each layer's input statistics for the rank
        allocation and the fits. None: no data, allocation by weight error alone, no
        healing.
    cost : {"params", "flops"}
        What the budget counts.
    allocation : {"profile", "uniform"}
        ``"profile"``: one global budget, spent greedily where each layer's relative output
        error falls most per parameter (its sensitivity profile); ``"uniform"``: each layer
        compressed by ``ratio`` on its own. For ``"mpo"`` with calibration data (two cores,
        ``cost="params"``) the profile is the SVD's, exact at every rank, and each TT layer
        takes the largest rank within its SVD counterpart's parameters before its fit is
        refined in the input metric (its error is known only once fitted; the refinement is
        kept where it also fits the held-out batches better, and the report notes layers too
        large to refine); so MPO and SVD compete layer by layer at equal parameters. Where a
        layer has no SVD size or no TT rank within its SVD share, the TT tables allocate.
    n_cores : int, default=2
        TT cores per layer (``"mpo"``).
    heal_steps, heal_lr, hidden_weight, patience, eval_every, max_seconds
        Healing: Adam steps, learning rate, weight of the replaced layers' own outputs in the
        loss, early-stop patience (in evaluations), steps between evaluations, time limit.
    output_fn : callable (output, batch) -> Tensor
        The tensor the outputs are compared on (default: the output, its
        ``last_hidden_state`` or ``logits``).
    metric : callable model -> float, optional
        Evaluated on the original, the replaced and the healed model.
    progress : bool
        Print healing progress to stderr.

    Returns
    -------
    compressed : nn.Module
    report : CompressionReport
    """
    start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 1:
        raise InvalidInputError(f"ratio must be a number greater than 1, got {ratio!r}")
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    if cost not in ("params", "flops"):
        raise InvalidInputError(f"cost must be 'params' or 'flops', got {cost!r}")
    if allocation not in ("profile", "uniform"):
        raise InvalidInputError(f"allocation must be 'profile' or 'uniform', got {allocation!r}")
    check_int("n_cores", n_cores, 1)
    check_int("calibration_batches", calibration_batches, 1)
    check_int("eval_every", eval_every, 1)
    check_int("patience", patience, 1)
    check_int("max_val_batches", max_val_batches, 1)
    if not 0 < val_fraction < 1:
        raise InvalidInputError(f"val_fraction must be in (0, 1), got {val_fraction!r}")

    chosen = select_linear_layers(model, layers)
    names = [n for n, _ in chosen]
    aliases = {  # a Linear registered under several names (tied) is replaced under each
        name: [n for n, m in model.named_modules(remove_duplicate=False) if m is lin]
        for name, lin in chosen
    }
    train_batches = val_batches = None
    if heal_data is not None:
        train_batches, val_batches = _split(heal_data, val_fraction, max_val_batches)
    modes = {m: m.training for m in model.modules()}
    model.eval()  # statistics and the teacher without dropout; BatchNorm statistics kept
    try:
        grams = (
            _input_grams(model, names, train_batches[:calibration_batches]) if train_batches else {}
        )
        check_grams = (  # the refined MPO fit is kept where it also fits held-out inputs
            _input_grams(model, names, val_batches)
            if method == "mpo" and n_cores == 2 and val_batches
            else {}
        )
        compressed, report = _replace(
            model, chosen, aliases, grams, check_grams, method, ratio, cost, allocation, n_cores
        )
        if metric is not None:
            report.metric_before = float(metric(model))
            report.metric_truncated = float(metric(compressed))
        if train_batches and check_int("heal_steps", heal_steps, 0):
            report.heal = distill(
                compressed,
                model,
                train_batches,
                val_batches,
                steps=heal_steps,
                lr=heal_lr,
                hidden=names if hidden_weight else (),
                hidden_weight=hidden_weight,
                output_fn=output_fn,
                eval_every=eval_every,
                patience=patience,
                max_seconds=max_seconds,
                progress=progress,
            )
            if metric is not None:
                report.metric_after = float(metric(compressed))
        if val_batches:
            report.latency_ms_before = _latency_ms(model, val_batches[0])
            report.latency_ms_after = _latency_ms(compressed, val_batches[0])
    finally:
        for module, training in modes.items():
            module.train(training)
    compressed.eval()
    report.seconds = time.perf_counter() - start
    return compressed, report


def _replace(
    model: nn.Module,
    chosen: list[tuple[str, nn.Linear]],
    aliases: dict[str, list[str]],
    grams: dict[str, Tensor],
    check_grams: dict[str, Tensor],
    method: str,
    ratio: float,
    cost: str,
    allocation: str,
    n_cores: int,
) -> tuple[nn.Module, CompressionReport]:
    """A copy of ``model`` with the chosen layers replaced at allocated sizes, and its report
    (without healing)."""

    def dense_cost(lin: nn.Linear) -> int:
        return lin.weight.numel() + (
            lin.bias.numel() if cost == "params" and lin.bias is not None else 0
        )

    before = [dense_cost(lin) for _, lin in chosen]
    # MPO fitted in the input metric: each layer's parameter budget from the SVD's profile
    # (closed form at every rank), since the refined fit's error is known only once fitted
    budget = sum(before) / ratio
    uniform = [b / ratio for b in before] if allocation == "uniform" else None
    picks = None
    if method == "mpo" and cost == "params" and n_cores == 2 and grams:
        picks = _mpo_within_svd_budgets(chosen, grams, budget, uniform)
    if picks is None:
        tables = [candidates(lin, method, grams.get(n), n_cores) for n, lin in chosen]
        picks = allocate(tables, budget, cost=cost, uniform_budgets=uniform)
    compressed = copy.deepcopy(model)
    reports, unrefined = [], []
    for (name, lin), pick in zip(chosen, picks, strict=True):
        new = build(
            lin,
            method,
            pick.size,
            n_cores,
            grams.get(name),
            refine=True,
            check_gram=check_grams.get(name),
        )
        for alias in aliases[name]:
            replace_module(compressed, alias, new)
        error = pick.error
        if isinstance(new, TTLinear):  # refined: its own error, not the table's
            approx = new.weight().detach().double()
            error = relative_error(lin.weight.detach().double(), approx, grams.get(name))
            if n_cores == 2 and name in grams and not refinable(new.in_modes, new.ranks[0]):
                unrefined.append(name)
        reports.append(
            LayerReport(
                name=name,
                shape=(lin.out_features, lin.in_features),
                method=method,
                ranks=list(getattr(new, "ranks", None) or [new.rank]),
                params_before=sum(p.numel() for p in lin.parameters()),
                params_after=sum(p.numel() for p in new.parameters()),
                flops_before=lin.in_features * lin.out_features,
                flops_after=pick.flops,
                error=error,
            )
        )
    return compressed, CompressionReport(
        method=method,
        ratio=float(ratio),
        layers=reports,
        model_params_before=sum(p.numel() for p in model.parameters()),
        model_params_after=sum(p.numel() for p in compressed.parameters()),
        notes=[
            f"not refined in the input metric (system above {ALS_MAX_SYSTEM} unknowns): "
            + ", ".join(unrefined)
        ]
        if unrefined
        else [],
    )


def _mpo_within_svd_budgets(
    chosen: list[tuple[str, nn.Linear]],
    grams: dict[str, Tensor],
    budget: float,
    uniform: list[float] | None,
) -> list[Candidate] | None:
    """Per layer, the largest two-core TT within the parameters the SVD's allocation gives
    the same layer; None (allocate by the TT tables instead) where the SVD cannot meet the
    budget, some layer has no SVD size, or no TT rank fits a layer's SVD share."""
    tables = [candidates(lin, "svd", grams.get(n)) for n, lin in chosen]
    if not all(tables):
        return None
    try:
        svd_picks = allocate(tables, budget, uniform_budgets=uniform)
    except InvalidInputError:  # below SVD's smallest sizes; the TT tables may still fit
        return None
    picks = [
        two_core_size(lin, pick.params) for (_, lin), pick in zip(chosen, svd_picks, strict=True)
    ]
    return None if any(p is None for p in picks) else picks
