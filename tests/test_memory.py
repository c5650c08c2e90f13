"""retain_freed_memory: freed buffers are reused instead of coming back as fresh pages."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
        reason="malloc tuning applies to Linux with glibc only",
    ),
    pytest.mark.skipif(
        bool(os.environ.get("LD_PRELOAD")),
        reason="another allocator is preloaded (LD_PRELOAD): glibc's malloc is not in use",
    ),
]

# A training step's pattern: several large buffers allocated, then all freed together. The
# baseline's malloc is pinned (a fixed 128 KiB mmap threshold, glibc's starting value) so that
# it does not depend on the heap's history: each buffer is then mapped afresh every step.
_SCRIPT = """
import resource, sys, torch
from tnml.train import retain_freed_memory
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


def _faults_per_step(call: bool, opt_out: str = "1") -> tuple[bool, float]:
    env = dict(
        os.environ,
        TNML_RETAIN_FREED_MEMORY=opt_out,
        GLIBC_TUNABLES="glibc.malloc.mmap_threshold=131072",
    )
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
    # 96 MiB of fresh pages a step: 24,576 faults with 4 KiB pages, 48 with 2 MiB huge pages
    assert faults_default >= 40
    assert faults * 10 < faults_default


@pytest.mark.parametrize("value", ["0", "OFF", " False "])
def test_opt_out_leaves_malloc_alone(value: str) -> None:
    applied, faults = _faults_per_step(call=True, opt_out=value)
    assert not applied
    assert faults >= 40


def test_training_asks_for_it() -> None:
    """The training loop every trainer runs applies it in its process."""
    script = (
        "import numpy as np\n"
        "import tnml\n"
        "from tnml.train import memory\n"
        "X = np.random.default_rng(0).random((20, 4))\n"
        "clf = tnml.MPSClassifier(bond_dim=2, epochs=1, validation_fraction=0)\n"
        "clf.fit(X, np.arange(20) % 2)\n"
        "called = memory.retain_freed_memory.cache_info().currsize == 1\n"
        "print(called, memory.retain_freed_memory())\n"
    )
    env = dict(os.environ, TNML_RETAIN_FREED_MEMORY="1")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out.splitlines()[-1] == "True True"  # called during fit, and it applied
