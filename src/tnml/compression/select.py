"""Which layers of a model to compress: name patterns matched against ``named_modules``."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from tnml.exceptions import InvalidInputError

__all__ = ["replace_module", "select_linear_layers"]


def select_linear_layers(
    model: nn.Module, patterns: str | Sequence[str] | None = None
) -> list[tuple[str, nn.Linear]]:
    """The ``nn.Linear`` submodules whose qualified names match any of ``patterns``.

    Parameters
    ----------
    model : nn.Module
    patterns : str or sequence of str, optional
        Shell-style patterns (``fnmatch``: ``"encoder.*.intermediate.dense"``); None takes every
        ``nn.Linear``. Each pattern must match at least one Linear layer.

    Returns
    -------
    list of (name, nn.Linear), in ``named_modules`` order.

    Raises
    ------
    InvalidInputError
        When a pattern matches no Linear layer, or the model has none.
    """
    if type(model) is nn.Linear:
        raise InvalidInputError(
            "model: a bare torch.nn.Linear cannot be replaced in place; wrap it, e.g. "
            "torch.nn.Sequential(linear)"
        )
    linears = [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear and n]
    if patterns is not None and not isinstance(patterns, str) and len(patterns) == 0:
        raise InvalidInputError("layers: an empty list chooses no layer; give None for all")
    if patterns is None:
        if not linears:
            raise InvalidInputError("layers: the model has no torch.nn.Linear layer to compress")
        return linears
    if isinstance(patterns, str):
        patterns = [patterns]
    for pattern in patterns:
        if not isinstance(pattern, str) or not any(
            fnmatch.fnmatchcase(n, pattern) for n, _ in linears
        ):
            examples = ", ".join(n for n, _ in linears[:3])
            raise InvalidInputError(
                f"layers: pattern {pattern!r} matches no torch.nn.Linear layer of the model "
                f"(its Linear layers are named like {examples})"
            )
    return [(n, m) for n, m in linears if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule called ``name`` (dotted) is, in place."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
