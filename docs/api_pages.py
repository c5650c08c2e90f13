"""Write the API reference pages from the packages' ``__all__`` at every build.

Each public module gets a page that summarises every name in its ``__all__``; each object gets
its own page (``autosummary``) in the lowest layer that exports it, and a module that
re-exports it links there. The pages are written from ``__all__``, so no public name can lack
a page; :func:`missing_pages` checks that after the build.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from pathlib import Path
from types import ModuleType

# In the layer order of the package (docs/ARCHITECTURE.md): an object's page lives under the
# first of these that exports it.
PUBLIC_MODULES = [
    "tnml.exceptions",
    "tnml.tensor",
    "tnml.features",
    "tnml.data",
    "tnml.preprocessing",
    "tnml.nn",
    "tnml.train",
    "tnml.estimators",
    "tnml.quantum",
    "tnml.explain",
    "tnml.compression",
    "tnml.structure",
    "tnml.io",
    "tnml.plot",
    "tnml.workflows.data",
    "tnml.workflows.train",
    "tnml.workflows.structure",
    "tnml.workflows.compress",
    "tnml.models",
    "tnml",
]

TITLES = {
    "tnml": "tnml (top level)",
    "tnml.exceptions": "tnml.exceptions — errors",
    "tnml.tensor": "tnml.tensor — tensor-network algebra",
    "tnml.features": "tnml.features — feature maps",
    "tnml.data": "tnml.data — data sets and loaders",
    "tnml.preprocessing": "tnml.preprocessing — scikit-learn transformers",
    "tnml.nn": "tnml.nn — PyTorch modules",
    "tnml.train": "tnml.train — trainers and checkpoints",
    "tnml.estimators": "tnml.estimators — scikit-learn estimators",
    "tnml.quantum": "tnml.quantum — circuits",
    "tnml.explain": "tnml.explain — entanglement and importance",
    "tnml.compression": "tnml.compression — compressing neural networks",
    "tnml.structure": "tnml.structure — structure learning",
    "tnml.io": "tnml.io — saving and loading",
    "tnml.plot": "tnml.plot — figures",
    "tnml.workflows.data": "tnml.workflows.data — data sets by name",
    "tnml.workflows.train": "tnml.workflows.train — a training run",
    "tnml.workflows.structure": "tnml.workflows.structure — structure of a file",
    "tnml.workflows.compress": "tnml.workflows.compress — compressing a saved model",
    "tnml.models": "tnml.models — every model in one place",
}


def public_names(module: ModuleType) -> list[str]:
    """Return ``module.__all__``, refusing a public module without one."""
    names = getattr(module, "__all__", None)
    if names is None:
        raise RuntimeError(f"{module.__name__} is documented but has no __all__")
    return list(names)


def _key(name: str, obj: object) -> object:
    """What identifies a public object across modules: the object itself, or, for a plain
    value (strings, numbers and containers are shared by identity, e.g. interned), the value
    under that name."""
    plain = isinstance(obj, str | int | float | tuple | list | dict | frozenset)
    return (name, id(obj)) if plain else id(obj)


@functools.cache
def homes() -> dict[object, str]:
    """Map every public object (its :func:`_key`) to the qualified name of its page."""
    home: dict[object, str] = {}
    for mod_name in PUBLIC_MODULES:
        module = importlib.import_module(mod_name)
        for name in public_names(module):
            obj = getattr(module, name)
            if not inspect.ismodule(obj):
                home.setdefault(_key(name, obj), f"{mod_name}.{name}")
    return home


def module_page(mod_name: str, home: dict[object, str]) -> str:
    """Return the reStructuredText of one module's page."""
    module = importlib.import_module(mod_name)
    title = TITLES[mod_name]
    own, elsewhere, modules = [], [], []
    for name in public_names(module):
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            modules.append(obj.__name__)
        elif home[_key(name, obj)] == f"{mod_name}.{name}":
            own.append(name)
        else:
            elsewhere.append(home[_key(name, obj)])
    lines = [title, "=" * len(title), "", f".. automodule:: {mod_name}", "   :no-members:", ""]
    lines += [f".. currentmodule:: {mod_name}", ""]
    if own:
        lines += [".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
        lines += [f"   {name}" for name in own] + [""]
    if modules:
        lines += ["Subpackages", "-----------", ""]
        lines += [f"- :mod:`{name}`" for name in modules] + [""]
    if elsewhere:
        lines += ["Also exported here", "------------------", ""]
        lines += ["Documented in the layer that defines them:", ""]
        lines += [f"- :obj:`{target}`" for target in elsewhere] + [""]
    return "\n".join(lines)


def write_api_pages(directory: Path) -> None:
    """Write ``index.rst`` and one page per public module into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    home = homes()
    entries = []
    for mod_name in PUBLIC_MODULES:
        _write_if_changed(directory / f"{mod_name}.rst", module_page(mod_name, home))
        entries.append(mod_name)
    index = [
        "API reference",
        "=============",
        "",
        "Every name in ``tnml.__all__`` and in the ``__all__`` of each public subpackage, in",
        "the layer order of the package: each layer imports only the ones above it.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ] + [f"   {name}" for name in entries]
    _write_if_changed(directory / "index.rst", "\n".join(index) + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    # Rewriting an unchanged page would make Sphinx rebuild it every time.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def skip_foreign_member(app, what, name, obj, skip, options):  # type: ignore[no-untyped-def]
    """``autodoc-skip-member``: leave out members a class inherits from other libraries.

    An estimator's page shows ``fit``, ``predict`` and ``score`` as tnml defines them, not
    scikit-learn's ``set_output`` or torch's ``Module.to``, which those libraries document.
    """
    if what != "class" or skip:
        return None
    target = obj.fget if isinstance(obj, property) else obj
    module = getattr(target, "__module__", None)
    if module is None:  # a plain class attribute: keep it if the class documents it
        return None
    return not module.startswith("tnml") or None


def _lookup(dotted: str) -> object | None:
    """Import the longest module prefix of ``dotted`` and walk the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def public_target(target: str) -> str | None:
    """Return the documented name of the object ``target`` names, or None.

    ``tnml.MPSClassifier`` (a re-export) becomes ``tnml.estimators.MPSClassifier``; a private
    module such as ``tnml.quantum.native`` becomes the page of its public package; a method of
    a public class, ``tnml.MPSClassifier.predict_proba``, the method on the class's page.
    """
    obj = _lookup(target) if target.startswith("tnml") else None
    if obj is None:
        return None
    if inspect.ismodule(obj):
        name = obj.__name__
        while name and name not in PUBLIC_MODULES:
            name = name.rpartition(".")[0]
        return name or None
    owner, _, member = target.rpartition(".")
    key = _key(member, obj)
    if key in homes():
        return homes()[key]
    owner_obj = _lookup(owner)
    if inspect.isclass(owner_obj) and id(owner_obj) in homes():
        return f"{homes()[id(owner_obj)]}.{member}"
    return None


def _defining(node) -> tuple[str | None, str | None]:  # type: ignore[no-untyped-def]
    """Module and class where the object documented on the node's page is defined.

    A docstring's short references (``:func:`factorize```) name things in its own module,
    which is not the public package whose page shows it.
    """
    page = node.get("refdoc", "").rpartition("/")[2]
    obj = _lookup(page) if page.startswith("tnml") else None
    if obj is None:
        return None, None
    if inspect.isclass(obj):
        return obj.__module__, obj.__name__
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    owner = qualname.rpartition(".")[0] or None
    return module, owner


def resolve_reexport(app, env, node, contnode):  # type: ignore[no-untyped-def]
    """``missing-reference``: send a reference to a re-export or a private path to its page.

    Anything that is not a tnml object with a page stays unresolved, and ``-W`` fails.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    candidates = [target]
    for module, cls in [(node.get("py:module"), node.get("py:class")), _defining(node)]:
        if module:
            candidates.append(f"{module}.{target}")
            if cls:
                candidates.append(f"{module}.{cls}.{target}")
    domain = env.get_domain("py")
    for candidate in candidates:
        name = public_target(candidate)
        if name is None:
            continue
        role = "mod" if name in PUBLIC_MODULES else "obj"
        resolved = domain.resolve_xref(env, node["refdoc"], app.builder, role, name, node, contnode)
        if resolved is not None:
            return resolved
    return None
