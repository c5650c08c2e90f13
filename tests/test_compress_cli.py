"""``tnml compress`` on a small Hugging Face model directory (made here: a 2-layer BERT with
its own word-piece vocabulary) and on a saved torch module: the written safetensors load back
to the compressed model's outputs; bad input is one line and exit 2."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from tnml.cli import app

transformers = pytest.importorskip(
    "transformers", reason="tnml compress on Hugging Face models needs pip install 'tnml[compress]'"
)

WORDS = "the a cat dog sat on mat ran fast slow red blue green news sport market rose fell".split()


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> tuple:
    path = tmp_path_factory.mktemp("bert")
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = transformers.BertModel(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    g = torch.Generator().manual_seed(0)
    lines = [
        " ".join(WORDS[i] for i in torch.randint(len(WORDS), (6,), generator=g).tolist())
        for _ in range(96)
    ]
    heal = path.parent / "heal.txt"
    heal.write_text("\n".join(lines) + "\n")
    return path, heal, model, tokenizer


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("method", ["mpo", "svd"])
def test_compress_a_hugging_face_directory_and_load_it_back(bert_dir, tmp_path, method) -> None:
    from tnml.workflows.compress import load_compressed_model

    path, heal, model, tokenizer = bert_dir
    out = tmp_path / "out"
    result = run(
        "compress",
        str(path),
        "--ratio",
        "3",
        "--method",
        method,
        "--heal-data",
        str(heal),
        "--layers",
        "encoder.*",
        "--heal-steps",
        "20",
        "--out",
        str(out),
        "-q",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["params_before"] / report["params_after"] >= 3
    assert len(report["layers"]) == 12  # 6 Linear layers per BERT layer, the pooler left
    loaded = load_compressed_model(out)
    kind = "TTLinear" if method == "mpo" else "LowRankLinear"
    assert type(loaded.get_submodule("encoder.layer.0.output.dense")).__name__ == kind
    assert type(loaded.get_submodule("pooler.dense")) is nn.Linear
    batch = tokenizer(["the cat sat on the mat", "red news"], padding=True, return_tensors="pt")
    with torch.no_grad():
        again = load_compressed_model(out)(**batch).last_hidden_state
        first = loaded(**batch).last_hidden_state
        original = model(**batch).last_hidden_state
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, original)  # it is the compressed model that came back
    cos = nn.functional.cosine_similarity(first, original, dim=-1).mean()
    assert cos > 0.5


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--ratio", "1"], "ratio must be a number greater than 1"),
        (["--layers", "decoder.*"], "matches no torch.nn.Linear"),
        (["--ratio", "100000"], "budget"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(bert_dir, tmp_path, extra, match) -> None:
    path, _, _, _ = bert_dir
    result = run("compress", str(path), "--out", str(tmp_path / "o"), *extra)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match.split()[0] in lines[0]


def test_model_that_does_not_load_is_named(tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    result = run("compress", str(broken), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "does not load" in result.output
    result = run("compress", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "weights.pt").write_bytes(b"\0" * 10)
    result = run("compress", str(tmp_path / "weights.pt"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "does not load as a torch module" in result.output
