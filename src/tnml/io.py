"""Save and load fitted ``tnml`` estimators: safetensors plus a JSON header, no pickle.

A model file is a ``safetensors`` file. Its tensors are the fitted module's ``state_dict``
(prefixed ``module.``) and the estimator's fitted arrays (prefixed ``fitted.``); its metadata
holds one JSON document under the key ``"tnml"`` with the format name and version, the
library version, the estimator class, its ``get_params()``, the JSON-safe fitted attributes
(``classes_``, ``n_features_in_``, ``history_``, ...) and free-form user metadata such as the
preprocessing a command-line run applied (image size, downsampling).

Files are written to a temporary name and renamed (:func:`tnml.train.atomic_write`), so a crash
mid-save never leaves half a file where a good one was. The header holds the SHA-256 of the
tensors (``tensors_sha256``): a file whose weights changed after saving (a flipped bit on disk)
is refused on load instead of predicting differently. Files written before it load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tnml._files import atomic_write
from tnml._version import __version__
from tnml.estimators import (
    CircuitClassifier,
    MPSAnomalyDetector,
    MPSBornMachine,
    MPSClassifier,
    TTNBornMachine,
    TTNClassifier,
)
from tnml.estimators.base import FIT_TIME_PARAMS, resolve_device
from tnml.exceptions import InvalidInputError, ModelFileError
from tnml.nn.born import MPSBornModule, TTNBornModule
from tnml.nn.circuit import CircuitClassifierModule
from tnml.nn.mps import MPSClassifierModule
from tnml.nn.ttn import TTNClassifierModule
from tnml.nn.unitary import (
    UnitaryMPSBornModule,
    UnitaryMPSClassifierModule,
    UnitaryTTNClassifierModule,
)
from tnml.structure import LearnedNetwork, StructureStep
from tnml.tensor.network import TensorNetwork

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "load",
    "read_header",
    "save",
]

FORMAT_NAME = "tnml-model"
FORMAT_VERSION = 1

# Estimators a model file may hold, by class name.
ESTIMATORS: dict[str, type] = {
    "CircuitClassifier": CircuitClassifier,
    "MPSClassifier": MPSClassifier,
    "MPSBornMachine": MPSBornMachine,
    "MPSAnomalyDetector": MPSAnomalyDetector,
    "TTNClassifier": TTNClassifier,
    "TTNBornMachine": TTNBornMachine,
}

# Tensor networks a model file may hold (structure learning, tnml.tensor.network).
_NETWORKS = ("TensorNetwork", "LearnedNetwork")

# Modules a model file may hold, by class name.
_MODULES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        CircuitClassifierModule,
        MPSClassifierModule,
        TTNClassifierModule,
        MPSBornModule,
        TTNBornModule,
        UnitaryMPSClassifierModule,
        UnitaryTTNClassifierModule,
        UnitaryMPSBornModule,
    )
}

# Fitted attributes saved as JSON (plain values) and as tensors (arrays), per estimator.
_JSON_ATTRS = ("n_features_in_", "n_iter_", "best_epoch_", "history_")
_ARRAY_ATTRS = ("data_min_", "data_max_", "n_levels_")


def save(model: Any, path: str | os.PathLike[str], *, metadata: dict | None = None) -> Path:
    """Write a fitted estimator to ``path`` (conventionally ``*.tnml``), atomically.

    Parameters
    ----------
    model : fitted tnml estimator
        Its parameters are kept, but for the fit-time ones (``checkpoint_path``, ``callback``,
        ``augment``) and a ``random_state`` given as a ``RandomState`` or ``Generator`` (spent
        by the fit), which the file holds as None.
    path : path-like
    metadata : dict, optional
        JSON-serialisable extras kept with the model (e.g. ``{"preprocessing": {...}}``) and
        returned by :func:`load` as ``model.metadata_``.

    Returns
    -------
    Path of the written file.
    """
    name = type(model).__name__
    if isinstance(model, TensorNetwork):
        return _save_network(model, path, metadata)
    if name not in ESTIMATORS or not hasattr(model, "module_"):
        raise ModelFileError(
            f"model must be a fitted tnml estimator or a TensorNetwork, got {name}"
        )
    tensors = {
        f"module.{key}": value.detach().cpu().contiguous()
        for key, value in model.module_.state_dict().items()
    }
    array_attrs = [attr for attr in _ARRAY_ATTRS if hasattr(model, attr)]
    for attr in array_attrs:
        value = getattr(model, attr)
        if value is not None:
            tensors[f"fitted.{attr}"] = torch.from_numpy(np.ascontiguousarray(value))
    header = {
        "estimator": name,
        # what a run did on the side (checkpoints, callbacks, augmentation) is not the model
        # a RandomState or Generator is spent by the fit: the file keeps None in its place
        "params": {
            key: None
            if key in FIT_TIME_PARAMS
            or isinstance(value, (np.random.RandomState, np.random.Generator))
            else value
            for key, value in model.get_params(deep=False).items()
        },
        "classes": model.classes_.tolist() if hasattr(model, "classes_") else None,
        "classes_dtype": model.classes_.dtype.str if hasattr(model, "classes_") else None,
        "array_attrs": array_attrs,
        "feature_names_in": (
            model.feature_names_in_.tolist() if hasattr(model, "feature_names_in_") else None
        ),
        "module_class": type(model.module_).__name__,
        "module_config": model.module_.config(),
        "fitted": {attr: getattr(model, attr) for attr in _JSON_ATTRS if hasattr(model, attr)},
        # estimators with fitted state beyond the module (encoders, thresholds) provide it
        "extra_state": model._extra_state() if hasattr(model, "_extra_state") else None,
        "metadata": metadata or {},
    }
    return _write(path, tensors, header)


def _write(path: str | os.PathLike[str], tensors: dict, header: dict) -> Path:
    """``tensors`` as safetensors with ``header`` (and the format fields) as JSON, atomically."""
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "tnml_version": __version__,
        **header,
    }
    header["tensors_sha256"] = _tensors_digest(tensors)
    try:
        text = json.dumps(header, allow_nan=True, default=_json_default)
    except TypeError as err:
        raise ModelFileError(f"metadata and parameters must be JSON-serialisable: {err}") from err
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"tnml": text}))


def _save_network(net: TensorNetwork, path: str | os.PathLike[str], metadata: dict | None) -> Path:
    """A :class:`TensorNetwork` (and a learned one's search path) as safetensors + header."""
    # clones: safetensors refuses tensors that share memory
    tensors = {
        f"core.{i}": core.detach().cpu().clone(memory_format=torch.contiguous_format)
        for i, core in enumerate(net.cores)
    }
    search = None
    if isinstance(net, LearnedNetwork):
        steps = [
            {**asdict(p), "edges": [[i, j, r] for (i, j), r in p.edges.items()]} for p in net.path
        ]
        search = {"path": steps, "rse": net.rse, "n_fits": net.n_fits}
    header = {
        "estimator": type(net).__name__ if search is not None else "TensorNetwork",
        "network": net.spec(),
        "search": search,
        "metadata": metadata or {},
    }
    return _write(path, tensors, header)


def _load_network(path: str | os.PathLike[str], header: dict, tensors: dict) -> TensorNetwork:
    try:
        spec = header["network"]
        cores = [tensors[f"core.{i}"] for i in range(len(spec["modes"]))]
        net = TensorNetwork.from_spec(spec, cores)
        search = header.get("search")
        if search is not None:
            steps = [
                StructureStep(
                    **{
                        **p,
                        "edges": {(i, j): r for i, j, r in p["edges"]},
                        "grown": tuple(p["grown"]) if p["grown"] is not None else None,
                    }
                )
                for p in search["path"]
            ]
            net = LearnedNetwork(net, steps, search["rse"], search["n_fits"])
    except (TypeError, KeyError, ValueError, InvalidInputError) as err:
        raise ModelFileError(f"{path} holds an inconsistent tensor network: {err}") from err
    net.metadata_ = header.get("metadata", {})
    return net


def _tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays (e.g. parameters set from a numpy grid) as plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the JSON header of a model file without loading its tensors."""
    header, _ = _read(path, tensors=False)
    return header


def load(path: str | os.PathLike[str], *, device: str | None = None) -> Any:
    """Read a model written by :func:`save`; it predicts exactly as the saved one did.

    Parameters
    ----------
    path : path-like
    device : str, optional
        Where to put the module (default: the ``device`` the model was trained with when it is
        available, else CPU).

    Returns
    -------
    The fitted estimator, with the saved user metadata at ``metadata_``.
    """
    header, tensors = _read(path, tensors=True)
    if header["estimator"] in _NETWORKS:
        return _load_network(path, header, tensors)
    try:
        return _load_estimator(path, header, tensors, device)
    except (KeyError, TypeError, AttributeError) as err:
        # a header with a field missing or of the wrong kind (edited, or cut short)
        raise ModelFileError(
            f"{path} holds an inconsistent tnml model: {type(err).__name__}: {err}"
        ) from err


def _load_estimator(
    path: str | os.PathLike[str], header: dict, tensors: dict, device: str | None
) -> Any:
    """The estimator of a model file's checked ``header`` and ``tensors``."""
    cls = ESTIMATORS[header["estimator"]]
    try:
        model = cls(**header["params"])
        classes = None
        if header.get("classes") is not None:
            classes = np.asarray(header["classes"], dtype=np.dtype(header["classes_dtype"]))
        module_class = _MODULES.get(header.get("module_class"))
        if module_class is None:  # files written before "module_class" existed
            module_class = (
                cls._module_class_for(header["params"])
                if hasattr(cls, "_module_class_for")
                else cls._module_class
            )
        module = module_class(**header["module_config"])
        state = {k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")}
        dtype = next(iter(state.values())).dtype
        module.to(dtype).load_state_dict(state)
    except (TypeError, KeyError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path} holds an inconsistent tnml model: {err}") from err
    if device is None:
        device = header["params"].get("device", "cpu")
        if device == "auto" or (str(device).startswith("cuda") and not torch.cuda.is_available()):
            device = "cuda" if device == "auto" and torch.cuda.is_available() else "cpu"
    else:
        try:
            device = str(resolve_device(device))
        except RuntimeError as err:  # a malformed device string
            raise InvalidInputError(f"device must be 'cpu', 'cuda[:n]' or 'auto': {err}") from err
    model.module_ = module.to(device)
    if classes is not None:
        model.classes_ = classes
    for attr, value in header["fitted"].items():
        setattr(model, attr, value)
    # files written before "array_attrs" existed hold classifiers with the scaling arrays
    for attr in header.get("array_attrs", ("data_min_", "data_max_")):
        key = f"fitted.{attr}"
        setattr(model, attr, tensors[key].numpy() if key in tensors else None)
    if header.get("feature_names_in") is not None:
        model.feature_names_in_ = np.asarray(header["feature_names_in"], dtype=object)
    if header.get("extra_state") is not None:
        try:
            model._restore_extra_state(header["extra_state"])
        except (TypeError, KeyError, ValueError) as err:
            raise ModelFileError(f"{path} holds an inconsistent tnml model: {err}") from err
    model.metadata_ = header["metadata"]
    return model


def _read(path: str | os.PathLike[str], *, tensors: bool) -> tuple[dict, dict]:
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a tnml model file")
    if not path.is_file():
        raise ModelFileError(f"model file {path} not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            data = {key: handle.get_tensor(key) for key in handle.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ModelFileError(
            f"{path} is not a tnml model file (cannot read it as safetensors: {err})"
        ) from err
    if "tnml" not in meta:
        raise ModelFileError(f"{path} is a safetensors file but was not written by tnml")
    try:
        header = json.loads(meta["tnml"])
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path} has a corrupt tnml header: {err}") from err
    if not isinstance(header, dict):
        raise ModelFileError(
            f"{path} has a corrupt tnml header: a JSON {type(header).__name__}, not an object"
        )
    for key, kind in (("estimator", str), ("format_version", int), ("metadata", dict)):
        if key in header and not isinstance(header[key], kind) and header[key] is not None:
            raise ModelFileError(
                f"{path} has a corrupt tnml header: {key!r} is a {type(header[key]).__name__}, "
                f"not a {kind.__name__}"
            )
    if header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a tnml model file (format {header.get('format')!r})")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses model format {header['format_version']}, newer than this tnml "
            f"({__version__}) reads; upgrade tnml"
        )
    if header.get("estimator") not in ESTIMATORS and header.get("estimator") not in _NETWORKS:
        raise ModelFileError(f"{path} holds an unknown estimator {header.get('estimator')!r}")
    for key, tensor in data.items():
        # a model with NaN weights would load and predict class 0 for everything
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            raise ModelFileError(f"{path} is damaged: tensor {key!r} holds NaN or infinity")
    digest = header.get("tensors_sha256")
    if tensors and digest is not None and digest != _tensors_digest(data):
        raise ModelFileError(
            f"{path} is damaged: its tensors differ from those saved (SHA-256 mismatch)"
        )
    return header, data
