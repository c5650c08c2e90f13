"""Shared test setup.

The suite runs on 2-core machines, and the networks in tests are small: torch's intra-op
threads cost far more in synchronisation than they win there (a small QR took ~8 ms with 2
threads and ~5 us with 1), so every test runs single-threaded.
"""

import torch

torch.set_num_threads(1)
