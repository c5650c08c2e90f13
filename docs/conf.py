"""Sphinx configuration of the tnml documentation.

Sphinx with numpydoc (the docstrings are numpydoc already), sphinx-gallery (tutorials are
plain Python scripts, executed at every build, their printed output and figures captured); the
API pages are written from ``__all__`` and the CLI reference from the Typer command itself.
The build is meant to run with ``-W``: a broken cross-reference, a docstring that does not
render or a tutorial that raises fails it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import api_pages  # noqa: E402  (docs/api_pages.py: the API pages, written from __all__)
import cli_pages  # noqa: E402  (docs/cli_pages.py: the CLI reference, read from the command)

import tnml  # noqa: E402

# Written before Sphinx looks for source files, so autosummary finds every page.
api_pages.write_api_pages(DOCS / "api")
cli_pages.write_cli_page(DOCS / "cli.rst")

project = "tnml"
author = "tnml developers"
copyright = "2026, tnml developers"
release = tnml.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "ARCHITECTURE.md", "tutorials/README.txt"]
root_doc = "index"
default_role = "obj"

# Cross-references are checked: every reference to a tnml object must resolve. Names of other
# libraries are not (their inventories would need the network at build time).
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|nn|numpy|np|scipy|sklearn|qiskit|qiskit_aer|matplotlib|pathlib|os|typing|"
        r"collections|dataclasses|enum|safetensors|rich|typer|click|transformers|opt_einsum|"
        r"numbers|io|abc|builtins|types|contextlib|functools|concurrent)(\..*)?",
    ),
    (
        r"py:class",
        r"(Tensor|Module|Parameter|Generator|Path|PathLike|ndarray|DTypeLike|ArrayLike"
        r"|Axes|Figure|QuantumCircuit|Target|BaseEstimator|Callable|Iterable|Iterator|Sequence"
        r"|Mapping|Any|Literal|Self|Optional|Union|Unpack|NDArray|dtype|device|optional|callable"
        r"|array-like|array_like|default|of|shape|or)",
    ),
    (
        r"py:(class|obj|data)",
        r"(int|float|str|bool|dict|list|tuple|None|object|bytes|complex|set"
        r"|type|slice|Exception|ValueError|KeyboardInterrupt|RuntimeError|FileNotFoundError)",
    ),
    # Fragments of generic annotations (``dict[str, Any]``) that autodoc splits at the comma.
    (r"py:class", r".*[\[\]].*"),
]

autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_class_members_toctree = False

sphinx_gallery_conf = {
    "examples_dirs": ["tutorials"],
    "gallery_dirs": ["auto_tutorials"],
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    # tnml.plot's figures are made without pyplot; docs/gallery_scrapers.py saves them.
    "image_scrapers": ("gallery_scrapers.tnml_figures", "matplotlib"),
}

html_theme = "pydata_sphinx_theme"
html_title = f"tnml {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []

os.environ.setdefault("TNML_DOCS_BUILD", "1")


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-skip-member", api_pages.skip_foreign_member)
    app.connect("missing-reference", api_pages.resolve_reexport)
