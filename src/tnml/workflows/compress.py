"""Compressing a model on disk: a Hugging Face model directory or a saved torch module,
healing data from a text file (one sentence per line) or a tensor file, and the result written
as safetensors that :func:`load_compressed_model` reads back."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tnml._files import atomic_write
from tnml.compression import compress, load_compressed, save_compressed
from tnml.compression.api import CompressionReport
from tnml.compression.store import LAYERS_FILE, WEIGHTS_FILE
from tnml.exceptions import InvalidInputError

__all__ = [
    "OUTPUT_FILES",
    "compress_saved_model",
    "load_compressed_model",
    "load_model",
    "mean_pool",
    "text_batches",
]

BASE_MODULE_FILE = "base_module.pt"
REPORT_FILE = "report.json"  # the CLI's, written after the model: an old one goes first

HF_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
)

#: Every file :func:`compress_saved_model` (and the CLI's report) may write into its folder.
OUTPUT_FILES = frozenset({*HF_FILES, WEIGHTS_FILE, LAYERS_FILE, BASE_MODULE_FILE, REPORT_FILE})


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise InvalidInputError(
            "model: a Hugging Face model directory needs the transformers package "
            "(pip install 'tnml[compress]')"
        ) from err
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # a CLI error must stay one line
    return transformers


def load_model(path: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` from a Hugging Face model directory (``config.json`` + weights;
    tokenizer None when it has none), or ``(module, None)`` from a file written by
    ``torch.save(module)``."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InvalidInputError(
                f"model: {path} is a directory without config.json, not a Hugging Face model"
            )
        transformers = _transformers()
        try:
            model = transformers.AutoModel.from_pretrained(path)
        except Exception as err:
            raise InvalidInputError(f"model: {path} does not load ({err})") from err
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        except Exception:
            tokenizer = None
        return model.eval(), tokenizer
    if not path.is_file():
        raise InvalidInputError(f"model: {path} does not exist")
    try:
        module = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise InvalidInputError(f"model: {path} does not load as a torch module ({err})") from err
    if not isinstance(module, nn.Module):
        raise InvalidInputError(
            f"model: {path} holds a {type(module).__name__}, not a torch.nn.Module "
            "(save the module itself with torch.save(module, path))"
        )
    return module.eval(), None


def text_batches(
    tokenizer: Any, texts: list[str], batch_size: int = 16, max_length: int = 64
) -> list[dict[str, Tensor]]:
    """Tokenised batches (mappings of input tensors) of ``texts``, in order."""
    return [
        dict(
            tokenizer(
                texts[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
        )
        for i in range(0, len(texts), batch_size)
    ]


def mean_pool(output: Any, batch: dict[str, Tensor]) -> Tensor:
    """Sentence embeddings: token states averaged over the attention mask, ``(B, hidden)``."""
    states = output.last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp_min(1)


def _heal_batches(
    path: Path, tokenizer: Any, batch_size: int, max_length: int, dtype: torch.dtype
) -> list:
    if path.suffix in (".pt", ".pth", ".npy"):
        try:
            data = (
                torch.from_numpy(np.load(path, allow_pickle=False))
                if path.suffix == ".npy"
                else torch.load(path, map_location="cpu", weights_only=True)
            )
        except Exception as err:  # any unreadable file is the user's input
            raise InvalidInputError(f"heal_data: {path} does not load as a tensor ({err})") from err
        if not isinstance(data, Tensor) or data.ndim < 2:
            raise InvalidInputError(f"heal_data: {path} must hold one tensor of inputs (N, ...)")
        if data.is_floating_point():
            data = data.to(dtype)  # the model's precision
        return list(data.split(batch_size))
    if tokenizer is None:
        raise InvalidInputError(
            f"heal_data: {path} is text, but the model has no tokenizer; give a .pt or .npy "
            "tensor of inputs"
        )
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if len(lines) < 2 * batch_size:
        raise InvalidInputError(
            f"heal_data: {path} has {len(lines)} non-empty lines; at least {2 * batch_size} "
            "are needed (train and validation batches)"
        )
    return text_batches(tokenizer, lines, batch_size, max_length)


def _without_weights(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters are on the meta device (no storage); buffers,
    which the safetensors may not hold (non-persistent ones), stay."""
    skeleton = copy.deepcopy(model)
    for module in skeleton.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = nn.Parameter(
                    p.detach().to("meta"), requires_grad=p.requires_grad
                )
    return skeleton


def compress_saved_model(
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    heal_data: str | os.PathLike[str] | None = None,
    batch_size: int = 16,
    max_length: int = 64,
    **options: Any,
) -> CompressionReport:
    """Compress the model at ``model_path`` (see :func:`load_model`) with
    :func:`tnml.compress` (``options`` are its keywords) and write it to ``out_dir``.

    ``out_dir`` must be new, empty, or an earlier output of this function holding only the
    files it writes (:data:`OUTPUT_FILES`); anything else is refused before any work. Each
    file is written whole or not at all, and an earlier output's files that this run does not
    write are removed, so that no run's files are left beside another's."""
    out = Path(out_dir)
    if out.resolve() == Path(model_path).resolve():
        raise InvalidInputError(f"out_dir: {out} is the model being compressed; give a new folder")
    _check_out_dir(out)
    model, tokenizer = load_model(model_path)
    batches = None
    if heal_data is not None:
        path = Path(heal_data)
        if not path.is_file():
            raise InvalidInputError(f"heal_data: {path} does not exist")
        dtype = next(model.parameters()).dtype
        batches = _heal_batches(path, tokenizer, batch_size, max_length, dtype)
    is_hf = Path(model_path).is_dir()
    if is_hf and tokenizer is not None and batches and isinstance(batches[0], dict):
        options.setdefault("output_fn", mean_pool)
    compressed, report = compress(model, heal_data=batches, **options)
    extra = {"base": "huggingface" if is_hf else "torch", "report": report.to_dict()}
    copied = [n for n in HF_FILES if is_hf and (Path(model_path) / n).is_file()]
    writes = {*copied, WEIGHTS_FILE, LAYERS_FILE, *(() if is_hf else (BASE_MODULE_FILE,))}
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:  # an earlier run's files that this one does not replace
        if name not in writes:
            (out / name).unlink(missing_ok=True)
    for name in copied:
        atomic_write(out / name, lambda tmp, name=name: shutil.copy2(Path(model_path) / name, tmp))
    if not is_hf:
        # the architecture to rebuild onto, without its weights (they are in the safetensors)
        skeleton = _without_weights(model)
        atomic_write(out / BASE_MODULE_FILE, lambda tmp: torch.save(skeleton, tmp))
    save_compressed(compressed, out, extra=extra)
    return report


def _check_out_dir(out: Path) -> None:
    """Refuse an output folder that is a file or holds anything but this workflow's files."""
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"out_dir: {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        others = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_FILES)
        if others or not (out / LAYERS_FILE).is_file():
            # a model folder holds config.json and model.safetensors too: only one with our
            # compression.json (and nothing else) is an earlier output
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            what = f"files a compressed model does not ({shown})" if others else "a model"
            raise InvalidInputError(
                f"out_dir: {out} holds {what}, not an earlier tnml compress output (no "
                f"{LAYERS_FILE}, or other files); give a new or empty folder"
            )


def load_compressed_model(directory: str | os.PathLike[str]) -> nn.Module:
    """The model written by :func:`compress_saved_model`."""
    directory = Path(directory)
    if (directory / "config.json").is_file():
        transformers = _transformers()
        config = transformers.AutoConfig.from_pretrained(directory)
        base = transformers.AutoModel.from_config(config)
    elif (directory / BASE_MODULE_FILE).is_file():
        base, _ = load_model(directory / BASE_MODULE_FILE)
    else:
        raise InvalidInputError(f"{directory} holds no compressed model (no config.json)")
    return load_compressed(directory, base).eval()
