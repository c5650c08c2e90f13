"""How much of the MiniLM benchmark's held-out text also occurs in BBC news's training
documents (the corpus repeats some articles), and in the healing sentences.

Usage: ``python benchmarks/bbc_duplicates.py``
"""

from __future__ import annotations

import re

from compress_minilm import bbc_split, sentences
from minilm_heal_probes import screen_split


def main() -> None:
    train_docs, _, test_docs, _ = bbc_split(0)
    train_set = set(train_docs)
    print(
        f"test documents that equal a training document: "
        f"{sum(d in train_set for d in test_docs)} of {len(test_docs)}"
    )
    train_sentences = {s.strip() for d in train_docs for s in re.split(r"(?<=[.!?])\s+|\n+", d)}
    held = sentences(test_docs, 512, 2)
    print(
        f"held-out test sentences found in training documents: "
        f"{sum(s in train_sentences for s in held)} of {len(held)}"
    )
    for n in (2048, 8192):
        heal = set(sentences(train_docs, n, 1))
        print(f"  ... among the {n} healing sentences: {sum(s in heal for s in held)}")
    for n in (2048, 8192):
        val, pool = screen_split(train_docs, n)
        pool = set(pool)
        print(
            f"probe validation sentences (256) also in its {n}-sentence pool: "
            f"{sum(s in pool for s in val)}"
        )


if __name__ == "__main__":
    main()
