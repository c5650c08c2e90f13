"""What one negative-curvature step costs against one Levenberg-Marquardt step, on the true
rings of TnALE targets (``structure_vs_tensorly.py synthetic``), one thread.

The LM step: the Jacobian, ``J^T J``, ``J^T r`` and one damped solve (``_fit_lm``'s work per
accepted step, without its trial evaluations); the negative-curvature step:
``tnml.tensor.network_fit.negative_curvature_step`` (Hessian, eigendecomposition, line
search). Both timed from standard normal cores, median of ``--repeats``. ``learn`` counts the
step as ``tnml.structure.greedy._HESSIAN_STEPS`` LM steps.

    python benchmarks/hessian_step_cost.py --seeds 128 146 --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ring_candidate_positions import true_ring
from tnml.tensor.network import TensorNetwork
from tnml.tensor.network_fit import negative_curvature_step, network_jacobian


def lm_step(net: TensorNetwork, target: torch.Tensor) -> None:
    """One LM step's linear algebra: Jacobian, normal equations and one damped solve."""
    residual = (net.to_dense() - target).reshape(-1)
    jac = network_jacobian(net)
    hess = jac.T @ jac
    grad = jac.T @ residual
    damping = 1e-3 * float(hess.diagonal().mean())
    torch.linalg.solve(hess + damping * torch.eye(len(hess), dtype=hess.dtype), -grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        _, _, cut, target = true_ring(seed)
        generator = torch.Generator().manual_seed(seed)
        times: dict[str, list[float]] = {"lm": [], "negative curvature": []}
        for _ in range(args.repeats + 1):  # the first of each warms caches, not counted
            net = TensorNetwork.ring((3,) * 6, cut, dtype=target.dtype, generator=generator)
            for name, run in (("lm", lm_step), ("negative curvature", negative_curvature_step)):
                start = time.perf_counter()
                run(net.copy(), target)
                times[name].append(time.perf_counter() - start)
        lm, step = (statistics.median(t[1:]) * 1e3 for t in times.values())
        print(
            f"seed {seed:3d} ranks {cut} ({net.n_params} parameters): LM step {lm:.1f} ms, "
            f"negative-curvature step {step:.1f} ms, ratio {step / lm:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
