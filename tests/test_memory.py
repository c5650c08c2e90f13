"""retain_freed_memory: freed buffers are reused instead of coming back as fresh pages."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc tuning applies to Linux with glibc only",
)

# A training step's pattern: several large buffers allocated, then all freed together, which
# glibc answers by trimming the heap (beyond twice its dynamic mmap threshold, at most 32 MiB)
# or by unmapping them; the next step's buffers page-fault again.
_SCRIPT = """
import resource, sys, torch
from tnml.tensor import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "1" else False
def step():
    buffers = [torch.empty(6 * 1024**2).fill_(1.0) for _ in range(4)]  # four of 24 MiB
    del buffers
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(int(applied), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults_per_step(call: bool, opt_out: bool = False) -> tuple[bool, float]:
    env = dict(os.environ, TNML_RETAIN_FREED_MEMORY="0" if opt_out else "1")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, "1" if call else "0"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "1", float(out[1])


def test_freed_buffers_are_reused_without_page_faults() -> None:
    applied, faults = _faults_per_step(call=True)
    assert applied
    _, faults_default = _faults_per_step(call=False)
    # 96 MiB of fresh pages is 24,576 faults; with the heap kept, next to none
    assert faults_default > 1000
    assert faults < 50


def test_opt_out_leaves_malloc_alone() -> None:
    applied, faults = _faults_per_step(call=True, opt_out=True)
    assert not applied
    assert faults > 1000


def test_training_asks_for_it() -> None:
    """The sequential contraction (every MPS classifier step) applies it in its process."""
    script = (
        "import torch\n"
        "from tnml.tensor import _memory\n"
        "from tnml.tensor.contract import reduce_sequential\n"
        "reduce_sequential(torch.rand(5, 3, 2, 3), torch.rand(4, 6, 2), 2)\n"
        "print(_memory._state['applied'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "True"
