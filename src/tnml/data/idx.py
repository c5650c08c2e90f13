"""Reader and writer for the IDX format that MNIST is distributed in, plain or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <type code> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the array in C order, big-endian. Type codes:
``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
``0x0E`` float64.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path

import numpy as np

from tnml.exceptions import DataFileError, InvalidInputError

__all__ = ["read_idx", "read_idx_header", "write_idx"]

# type code -> big-endian dtype as stored in the file
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[np.dtype, int] = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _open(path: str | os.PathLike[str]) -> tuple[Path, io.BufferedIOBase]:
    """Open ``path`` for binary reading, transparently decompressing gzip (by magic bytes)."""
    path = Path(path)
    try:
        raw = open(path, "rb")  # returned to the caller, which closes it
    except FileNotFoundError:
        raise DataFileError(f"IDX file not found: {path}") from None
    except OSError as exc:
        raise DataFileError(f"cannot read IDX file {path}: {exc.strerror or exc}") from None
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return path, gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return path, raw


def _read_header(path: Path, f: io.BufferedIOBase) -> tuple[np.dtype, tuple[int, ...]]:
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataFileError(
            f"{path} is not an IDX file: expected magic bytes 00 00 <type> <ndim>, "
            f"got {magic.hex(' ') or 'an empty file'}"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataFileError(
            f"{path} has unknown IDX type code 0x{code:02X}; expected one of {valid}"
        )
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataFileError(
            f"{path} is truncated: the header declares {ndim} dimensions but ends after "
            f"{len(dims) // 4}"
        )
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    return IDX_DTYPES[code], shape


def _read(
    path: str | os.PathLike[str], header_only: bool
) -> tuple[np.dtype, tuple[int, ...], bytes]:
    p, f = _open(path)
    try:
        with f:
            dtype, shape = _read_header(p, f)
            payload = b"" if header_only else f.read()
    except DataFileError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a cut-off gzip stream raises EOFError.
        raise DataFileError(f"{p} is a corrupt or truncated gzip file: {exc}") from None
    return dtype, shape, payload


def read_idx_header(path: str | os.PathLike[str]) -> tuple[np.dtype, tuple[int, ...]]:
    """Return the (native-endian) dtype and shape declared in an IDX file's header.

    Only the header is read (and decompressed), so this is cheap even for large files.

    Raises
    ------
    DataFileError
        If the file is missing, unreadable, or does not start with a valid IDX header.
    """
    dtype, shape, _ = _read(path, header_only=True)
    return dtype.newbyteorder("="), shape


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a NumPy array.

    Gzip compression is detected from the file's first bytes, whatever its suffix.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    np.ndarray
        A writable, native-endian array with the shape and dtype given by the header.

    Raises
    ------
    DataFileError
        If the file is missing or unreadable, has a bad magic number or type code, or its
        payload does not hold exactly the number of values the header declares.

    Examples
    --------
    >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    dtype, shape, payload = _read(path, header_only=False)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(payload) != expected:
        problem = "is truncated" if len(payload) < expected else "has trailing bytes"
        raise DataFileError(
            f"{Path(path)} {problem}: header declares shape {shape} of {dtype.newbyteorder('=')} "
            f"({expected} bytes) but the payload holds {len(payload)} bytes"
        )
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # copy: writable and native-endian


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends with ``.gz``.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    array : np.ndarray
        Array of dtype uint8, int8, int16, int32, float32 or float64.

    Raises
    ------
    InvalidInputError
        If the dtype has no IDX type code, or the array has more than 255 axes.
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        valid = ", ".join(str(dt.newbyteorder("=")) for dt in IDX_DTYPES.values())
        raise InvalidInputError(
            f"array dtype {array.dtype} cannot be stored in IDX; cast to one of {valid}"
        )
    if array.ndim > 255:
        raise InvalidInputError(f"array must have at most 255 axes for IDX, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.write_bytes(data)
