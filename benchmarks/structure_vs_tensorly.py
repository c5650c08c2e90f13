"""Greedy structure learning (tnml.structure.learn) against TensorLy's CP, Tucker, TT and TR, on
the same tensors in one run.

  synthetic   Hashemizadeh et al.'s targets (order 5, modes of 7; Tucker 2,3,4,3,2, triangle
              0-1:5 1-2:2 1-4:2 2-3:5 2-4:2, TT 2,3,6,5, TR 2,3,4,5,5; Gaussian cores, unit
              norm) and TnALE's (order-6 TR, modes of 3, ranks drawn from 1..7): a run succeeds
              when it reaches RSE <= 1e-5 with at most the true structure's parameters.
  images      scikit-learn's sample images resized to 600x600x3 and reshaped (C order) to
              6x10x10x6x10x10x3 (Hashemizadeh et al.'s shape): relative error at each parameter
              budget, greedy path against the best TensorLy decomposition within the budget.
  completion  the same images at 64x64x3 (4x4x4x4x4x4x3... see --size), 70% and 90% of entries
              hidden: RSE and PSNR on the hidden entries; TensorLy's masked CP and Tucker.

Usage: python benchmarks/structure_vs_tensorly.py synthetic --runs 30
       python benchmarks/structure_vs_tensorly.py synthetic --runs 50 --first-seed 100 \
           --targets TnALE
       python benchmarks/structure_vs_tensorly.py criteria
       python benchmarks/structure_vs_tensorly.py images --budgets 500 1000 2000 4000
       python benchmarks/structure_vs_tensorly.py completion --size 64
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import tensorly as tl
import torch
from PIL import Image
from sklearn.datasets import load_sample_image
from tensorly.decomposition import parafac, tensor_ring, tensor_ring_als, tensor_train, tucker

from tnml.structure import learn
from tnml.tensor.network import TensorNetwork

tl.set_backend("numpy")


def rse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ---- synthetic ----------------------------------------------------------------------------------


def synthetic_targets(seed: int) -> dict[str, TensorNetwork]:
    g = torch.Generator().manual_seed(seed)
    shape = (7,) * 5
    tri = {(0, 1): 5, (1, 2): 2, (1, 4): 2, (2, 3): 5, (2, 4): 2}
    rng = np.random.default_rng(seed)
    tnale_ranks = [int(r) for r in rng.integers(1, 8, size=6)]
    return {
        "Tucker 2,3,4,3,2": TensorNetwork.tucker(shape, (2, 3, 4, 3, 2), generator=g),
        "triangle": TensorNetwork(shape, [(i,) for i in range(5)], tri, generator=g),
        "TT 2,3,6,5": TensorNetwork.chain(shape, (2, 3, 6, 5), generator=g),
        "TR 2,3,4,5,5": TensorNetwork.ring(shape, (2, 3, 4, 5, 5), generator=g),
        "TnALE TR order 6": TensorNetwork.ring((3,) * 6, tnale_ranks, generator=g),
    }


def run_synthetic(runs: int, first_seed: int = 0, targets: list[str] | None = None) -> None:
    """Seeds ``first_seed .. first_seed + runs - 1``; ``targets``: names starting with one of
    these only (all when None)."""
    seeds = range(first_seed, first_seed + runs)
    print(
        f"synthetic: seeds {seeds.start}-{seeds.stop - 1}, success = RSE <= 1e-5 at <= true params"
    )
    rows: dict[str, list[tuple[bool, int, int, int, float, float]]] = {}
    for seed in seeds:
        for name, truth in synthetic_targets(seed).items():
            if targets is not None and not any(name.startswith(t) for t in targets):
                continue
            target = truth.to_dense().numpy()
            target /= np.linalg.norm(target)
            start = time.perf_counter()
            net = learn(target, rse=1e-6, random_state=seed)
            seconds = time.perf_counter() - start
            error = rse(net.to_dense().numpy(), target)
            ok = error <= 1e-5 and net.n_params <= truth.n_params
            rows.setdefault(name, []).append(
                (ok, net.n_params, truth.n_params, net.n_fits, seconds, error)
            )
            print(
                f"  {name:18s} seed {seed:3d}: {'ok  ' if ok else 'MISS'} params {net.n_params:5d}"
                f" (true {truth.n_params}) rse {error:.1e} fits {net.n_fits} {seconds:.1f}s",
                flush=True,
            )
    print("\n| target | success | learned / true params (median) | fits (mean) | seconds (mean) |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        ok = sum(x[0] for x in r)
        ratio = np.median([x[1] / x[2] for x in r])
        print(
            f"| {name} | {ok}/{len(r)} | {ratio:.2f} | {np.mean([x[3] for x in r]):.0f} | "
            f"{np.mean([x[4] for x in r]):.1f} |"
        )


def run_criteria(seeds: list[int]) -> None:
    """Edge choice per added parameter against by loss alone, on seeds apart from the
    synthetic table's (its wall times are not the point: counts only)."""
    print(f"criteria: seeds {seeds}, targets without Tucker, success as in synthetic")
    score = {"per_param": 0, "loss": 0}
    total = 0
    for seed in seeds:
        for name, truth in synthetic_targets(seed).items():
            if name.startswith("Tucker"):
                continue
            target = truth.to_dense().numpy()
            target /= np.linalg.norm(target)
            total += 1
            for criterion in score:
                net = learn(target, rse=1e-6, random_state=seed, criterion=criterion)
                ok = rse(net.to_dense().numpy(), target) <= 1e-5 and net.n_params <= truth.n_params
                score[criterion] += ok
                print(
                    f"  {name:18s} seed {seed}: {criterion:9s} {'ok' if ok else 'MISS'} "
                    f"params {net.n_params} (true {truth.n_params})",
                    flush=True,
                )
    print(f"recovered of {total}: " + ", ".join(f"{k} {v}" for k, v in score.items()))


# ---- images -------------------------------------------------------------------------------------


def sample_image(name: str, size: int) -> np.ndarray:
    image = Image.fromarray(load_sample_image(name)).resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.float64) / 255.0


def tensorly_curves(target: np.ndarray, budgets: list[int]) -> dict[str, list[tuple[int, float]]]:
    """(params, rse) of TensorLy's CP (ALS, 100 sweeps), Tucker (HOOI), TT (TT-SVD) and TR
    (TR-SVD, and TR-ALS with 15 sweeps): CP, Tucker and TR-ALS at the largest rank within each
    budget (their error falls with the rank), TT-SVD and TR-SVD at every rank within the
    largest budget."""
    shape = target.shape
    n = len(shape)
    top = max(budgets)
    curves: dict[str, list[tuple[int, float]]] = {"CP": [], "Tucker": [], "TT": [], "TR": []}
    for budget in budgets:
        start = time.perf_counter()
        r = budget // sum(shape)
        cp = parafac(target, r, n_iter_max=100, init="random", random_state=0, tol=1e-7)
        curves["CP"].append((r * sum(shape), rse(tl.cp_to_tensor(cp), target)))
        k = 1
        while _tucker_params(shape, k + 1) <= budget:
            k += 1
        ranks = [min(k, d) for d in shape]
        core, factors = tucker(target, rank=ranks, n_iter_max=50, init="svd", random_state=0)
        tk_error = rse(tl.tucker_to_tensor((core, factors)), target)
        curves["Tucker"].append((_tucker_params(shape, k), tk_error))
        r = math.isqrt(budget // sum(shape))
        if r >= 2:
            tr = tensor_ring_als(target, rank=r, n_iter_max=15, random_state=0)
            curves["TR"].append((r * r * sum(shape), rse(tl.tr_to_tensor(tr), target)))
        print(
            f"  TensorLy CP / Tucker / TR-ALS within {budget}: {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    for r in range(1, 200):
        tt = tensor_train(target, rank=[1] + [r] * (n - 1) + [1])
        params = sum(f.size for f in tt.factors)
        if params > top:
            break
        curves["TT"].append((params, rse(tl.tt_to_tensor(tt), target)))
    for r in range(1, 60):
        try:  # TR-SVD needs rank[0] * rank[1] <= shape[0]
            tr = tensor_ring(target, rank=[r] * (n + 1))
        except (ValueError, np.linalg.LinAlgError):
            break
        params = sum(f.size for f in tr.factors)
        if params > top:
            break
        curves["TR"].append((params, rse(tl.tr_to_tensor(tr), target)))
    return curves


def best_within(points: list[tuple[int, float]], budget: int) -> float:
    errors = [e for p, e in points if p <= budget]
    return min(errors) if errors else math.nan


def run_images(budgets: list[int], names: list[str]) -> None:
    top = max(budgets)
    print("images: 600x600x3 -> 6x10x10x6x10x10x3; relative error at each parameter budget")
    for name in names:
        target = sample_image(name, 600).reshape(6, 10, 10, 6, 10, 10, 3)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curves = tensorly_curves(target, budgets)
        tl_seconds = time.perf_counter() - start
        start = time.perf_counter()
        net = learn(target, max_params=top, random_state=0, progress=False)
        seconds = time.perf_counter() - start
        greedy = [(s.n_params, s.rse) for s in net.path]
        print(
            f"\n{name}: greedy {seconds:.0f} s ({len(net.path)} steps); TensorLy {tl_seconds:.0f} s"
        )
        print(f"final structure: {net}")
        print("| budget | greedy | CP | Tucker | TT | TR | greedy <= best? |")
        print("|---|---|---|---|---|---|---|")
        for b in budgets:
            g = best_within(greedy, b)
            others = {k: best_within(v, b) for k, v in curves.items()}
            best = (
                np.nanmin(list(others.values()))
                if any(not math.isnan(v) for v in others.values())
                else math.nan
            )
            cells = " | ".join(f"{others[k]:.4f}" for k in ("CP", "Tucker", "TT", "TR"))
            verdict = "yes" if g <= best or math.isnan(best) else "NO"
            print(f"| {b} | {g:.4f} | {cells} | {verdict} |")


# ---- completion ---------------------------------------------------------------------------------


def run_completion(size: int, budget: int, names: list[str], fractions: list[float]) -> None:
    print(f"completion: {size}x{size}x3 images, budget {budget} parameters, hidden-entry errors")
    print("| image | hidden | greedy RSE / PSNR | CP RSE / PSNR | Tucker RSE / PSNR | seconds |")
    print("|---|---|---|---|---|---|")
    for name in names:
        image = sample_image(name, size)
        modes = [f for n in (size, size) for f in _factors(n)] + [3]
        target = image.reshape(modes)
        for missing in fractions:
            mask = np.random.default_rng(0).random(target.shape) >= missing
            start = time.perf_counter()
            net = learn(target, max_params=budget, mask=mask, random_state=0)
            seconds = time.perf_counter() - start
            dense = net.to_dense().numpy()
            hidden = ~mask
            cells = [_scores(dense, target, hidden)]
            observed = np.where(mask, target, 0.0)
            r = max(1, budget // sum(target.shape))
            cp = parafac(
                observed, r, mask=mask.astype(float), n_iter_max=200, init="random", random_state=0
            )
            cells.append(_scores(tl.cp_to_tensor(cp), target, hidden))
            k = 1
            while _tucker_params(target.shape, k + 1) <= budget:
                k += 1
            ranks = [min(k, d) for d in target.shape]
            core, factors = tucker(
                observed,
                rank=ranks,
                mask=mask.astype(float),
                n_iter_max=200,
                init="random",
                random_state=0,
            )
            cells.append(_scores(tl.tucker_to_tensor((core, factors)), target, hidden))
            print(
                f"| {name} | {missing:.0%} | " + " | ".join(cells) + f" | {seconds:.0f} |",
                flush=True,
            )


def _factors(n: int) -> list[int]:
    from tnml.workflows.structure import factor_axis

    return list(factor_axis(n, 4))


def _tucker_params(shape: tuple[int, ...], k: int) -> int:
    ranks = [min(k, d) for d in shape]
    return math.prod(ranks) + sum(d * r for d, r in zip(shape, ranks, strict=True))


def _scores(estimate: np.ndarray, target: np.ndarray, hidden: np.ndarray) -> str:
    e, t = estimate[hidden], target[hidden]
    mse = float(np.mean((e - t) ** 2))
    return f"{rse(e, t):.4f} / {10 * math.log10(1.0 / mse):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="task", required=True)
    syn = sub.add_parser("synthetic")
    syn.add_argument("--runs", type=int, default=50)
    syn.add_argument("--first-seed", type=int, default=0, help="seeds from this one (default 0)")
    syn.add_argument(
        "--targets", nargs="+", default=None, help="only targets whose names start so, e.g. TnALE"
    )
    img = sub.add_parser("images")
    img.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    img.add_argument("--names", nargs="+", default=["china.jpg", "flower.jpg"])
    comp = sub.add_parser("completion")
    comp.add_argument("--size", type=int, default=64)
    comp.add_argument("--budget", type=int, default=1500)
    comp.add_argument("--names", nargs="+", default=["china.jpg", "flower.jpg"])
    comp.add_argument("--missing", type=float, nargs="+", default=[0.7, 0.9])
    crit = sub.add_parser("criteria")
    crit.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 106)))
    for task in (syn, img, comp, crit):
        task.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, tensorly {tl.__version__}, {time.strftime('%Y-%m-%d')}")
    if args.task == "synthetic":
        run_synthetic(args.runs, args.first_seed, args.targets)
    elif args.task == "criteria":
        run_criteria(args.seeds)
    elif args.task == "images":
        run_images(args.budgets, args.names)
    else:
        run_completion(args.size, args.budget, args.names, args.missing)


if __name__ == "__main__":
    main()
