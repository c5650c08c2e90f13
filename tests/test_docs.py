"""The documentation's API pages cover every public name (docs/api_pages.py).

The docs build itself (``sphinx-build -W``, run by ``.ci/run``) fails on broken references and
on tutorials that raise; these tests keep the page list complete without building: a new
public subpackage or a name added to an ``__all__`` cannot go without a page.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import pytest

import tnml

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


api_pages = _load("api_pages")


def _subpackages() -> list[str]:
    return [
        info.name
        for info in pkgutil.iter_modules(tnml.__path__, "tnml.")
        if not info.name.rpartition(".")[2].startswith("_")
    ]


def test_every_public_module_of_tnml_is_documented() -> None:
    # The CLI has its own page (cli.rst, written from the command); workflows by submodule.
    undocumented = {
        name
        for name in _subpackages()
        if name not in api_pages.PUBLIC_MODULES and name not in {"tnml.cli", "tnml.workflows"}
    }
    assert not undocumented, f"add to PUBLIC_MODULES in docs/api_pages.py: {undocumented}"
    workflows = importlib.import_module("tnml.workflows")
    for info in pkgutil.iter_modules(workflows.__path__, "tnml.workflows."):
        assert info.name in api_pages.PUBLIC_MODULES


@pytest.mark.parametrize("module_name", api_pages.PUBLIC_MODULES)
def test_every_name_in_all_gets_a_page_or_a_link_to_one(module_name: str) -> None:
    module = importlib.import_module(module_name)
    page = api_pages.module_page(module_name, api_pages.homes())
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            assert f":mod:`{obj.__name__}`" in page
        elif f"   {name}\n" in page:  # an autosummary entry: its own page
            continue
        else:
            target = api_pages.public_target(f"{module_name}.{name}")
            assert target is not None and f":obj:`{target}`" in page, name


def test_reexports_resolve_to_the_defining_layer() -> None:
    assert api_pages.public_target("tnml.MPSClassifier") == "tnml.estimators.MPSClassifier"
    assert api_pages.public_target("tnml.models.MPSClassifierModule") == (
        "tnml.nn.MPSClassifierModule"
    )
    method = api_pages.public_target("tnml.MPSClassifier.predict_proba")
    assert method == "tnml.estimators.MPSClassifier.predict_proba"
    # a private module points at its public package; a private function at nothing
    assert api_pages.public_target("tnml.quantum.native") == "tnml.quantum"
    assert api_pages.public_target("tnml.tensor.network_fit.prepare_target") is None
    assert api_pages.public_target("numpy.ndarray") is None


def test_cli_page_lists_every_command(tmp_path: Path) -> None:
    cli_pages = _load("cli_pages")
    page = tmp_path / "cli.rst"
    cli_pages.write_cli_page(page)
    text = page.read_text()
    for command in ("train", "evaluate", "compile", "noise-study", "structure", "anomaly fit"):
        assert f"``tnml {command}``" in text
    assert "--max-2q" in text  # an option of tnml compile, read from the command
