"""Keep freed heap memory in the process, so training steps do not page-fault on fresh buffers.

A training step allocates and frees the same multi-megabyte buffers every step (the step
matrices and environments of the sequential contraction, the gradients). glibc's malloc serves
them from the heap once its dynamic mmap threshold has risen past their size, but it trims the
top of the heap whenever more than twice that threshold lies free, which is what happens at the
end of every step: the next step's buffers come back as fresh pages, one page fault per 4 KiB.
Measured on an MPS classifier step (196 sites, D = 64, batch 100, two threads): 2,200-3,200
page faults and 4-7 ms of system time a step, 21.3 ms against 16.5 ms (medians of six
interleaved runs, together with fewer Python calls per site; ``benchmarks/RESULTS.md``,
issue 17). PyTorch's CPU tuning guide answers the same problem by preloading jemalloc or
tcmalloc; this does the least that works without a preload.

The price: blocks up to the mmap threshold now come from the heap, where a freed block between
live ones is a hole that later, larger blocks cannot use, so the peak can grow by such holes;
and up to the trim threshold of freed memory stays with the process instead of going back to
the system. :func:`tnml.train.fit_loop` (every trainer) calls it; a hand-written training loop
may call it once. Setting ``TNML_RETAIN_FREED_MEMORY=0`` in the environment leaves malloc as it
is.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Blocks up to this size come from the heap, so they can be reused (glibc caps its dynamic
# threshold at 32 MiB and some of its releases refuse more; 784 sites at D = 64 need 26 MB of
# step matrices, at D = 128 100 MB, which stay mmapped).
MMAP_THRESHOLDS = (64 * 1024**2, 32 * 1024**2)
# Free memory at the top of the heap is returned to the system only beyond this much.
TRIM_THRESHOLD = 512 * 1024**2

_OPT_OUT = {"0", "false", "no", "off"}


@functools.cache
def retain_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse; once per process, later calls are free.

    Sets malloc's mmap threshold (64 MiB, or 32 MiB where glibc refuses more) and trim
    threshold (512 MiB) for the whole process; see the module's notes for the price.

    Returns
    -------
    bool
        True when the thresholds were set (Linux with glibc, not opted out by
        ``TNML_RETAIN_FREED_MEMORY`` set to 0, false, no or off), False otherwise.
    """
    if os.environ.get("TNML_RETAIN_FREED_MEMORY", "1").strip().lower() in _OPT_OUT:
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; setting either disables glibc's dynamic thresholds
    if not any(mallopt(_M_MMAP_THRESHOLD, size) for size in MMAP_THRESHOLDS):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
