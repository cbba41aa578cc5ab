"""Read and write the IDX format of MNIST and Fashion-MNIST, gzip-compressed or plain.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then
``ndim`` big-endian ``uint32`` sizes, then the elements in C order, big-endian.
Compression is detected from the content (gzip's ``1f 8b`` magic bytes), never
from the file name, so a renamed or un-gzipped file still reads.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

#: IDX dtype code -> big-endian NumPy dtype, as the format defines them.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
_UINT32_MAX = 2**32 - 1


def _read_exactly(stream: BinaryIO, out: memoryview) -> int:
    """Fill ``out`` from ``stream``; return the bytes read (short only at end of file)."""
    filled = 0
    while filled < len(out):
        n = stream.readinto(out[filled:])
        if not n:
            break
        filled += n
    return filled


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file, gzip-compressed or plain (detected by its magic bytes).

    Returns
    -------
    numpy.ndarray
        A writable, C-contiguous array in native byte order with the shape the
        header declares: ``uint8``, ``int8``, ``int16``, ``int32``,
        ``float32`` or ``float64`` as the dtype code says. MNIST images come
        back as ``uint8 (N, 28, 28)``, labels as ``uint8 (N,)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not IDX (bad magic, unknown dtype code, zero
        dimensions), is truncated, has trailing bytes, or is a corrupt gzip
        stream. The message names the file and what was wrong.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            return _read_idx_stream(f, path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # A cut-off download usually surfaces here: gzip cannot finish its stream.
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc


#: Deflate never compresses better than 1032:1, so a gzip file of ``c`` bytes holds at most about
#: ``1032 c`` bytes: a header declaring more cannot be true (checked before decompressing anything).
_MAX_DEFLATE_RATIO = 1032


def _check_declared_size(f: BinaryIO, path: Path, shape: tuple[int, ...], dtype: np.dtype, expected: int,
                         header_bytes: int) -> None:
    """Refuse a header whose declared data cannot be in the file, before allocating or decompressing it."""
    on_disk = path.stat().st_size
    declared = f"IDX header declares shape {shape} of {dtype.str[1:]} = {expected} bytes"
    if isinstance(f, gzip.GzipFile):
        bound = on_disk * _MAX_DEFLATE_RATIO
        if expected > bound:
            raise ValueError(f"{path}: {declared}, but its {on_disk} compressed bytes can hold at most {bound}: "
                             "truncated or corrupt file")
    elif expected > on_disk - header_bytes:
        raise ValueError(f"{path}: truncated IDX data: {declared.replace('IDX header', 'header')}, "
                         f"file holds only {on_disk - header_bytes}")


def _read_idx_stream(f: BinaryIO, path: Path) -> np.ndarray:
    magic = f.read(4)
    if len(magic) < 4:
        raise ValueError(f"{path}: truncated IDX header: {len(magic)} of 4 magic bytes")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file: magic bytes {magic.hex(' ')} "
            "(expected 00 00 <dtype code> <ndim>)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions declared, "
            f"only {len(raw_dims)} of {4 * ndim} size bytes present"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    dtype = IDX_DTYPES[code]
    expected = dtype.itemsize * int(np.prod(shape, dtype=object))
    _check_declared_size(f, path, shape, dtype, expected, 4 + 4 * ndim)
    data = np.empty(shape, dtype=dtype)
    got = _read_exactly(f, memoryview(data).cast("B")) if expected else 0
    if got < expected:
        raise ValueError(
            f"{path}: truncated IDX data: header declares shape {shape} of {dtype.str[1:]} "
            f"= {expected} bytes, file holds only {got}"
        )
    if f.read(1):
        raise ValueError(f"{path}: malformed IDX file: trailing bytes after the {expected} data bytes")
    # Native byte order, so kernels and NumPy arithmetic see ordinary arrays.
    # (One-byte dtypes have no byte order: no copy for MNIST.)
    return data.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write an array as an IDX file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its directory must exist.
    array : numpy.ndarray
        1 to 255 dimensions, each below ``2**32``, of dtype ``uint8``,
        ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``.
    compress : bool, optional
        gzip the file. The default (None) compresses when the name ends in
        ``.gz``. The gzip header carries no timestamp, so equal arrays give
        byte-identical files.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If ``array``'s dtype has no IDX code.
    ValueError
        If ``array`` has 0 or more than 255 dimensions, or a size of ``2**32`` or more.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        names = ", ".join(str(dt.newbyteorder("=")) for dt in IDX_DTYPES.values())
        raise TypeError(f"write_idx: array dtype {array.dtype} has no IDX code (supported: {names})")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got shape {array.shape}")
    if any(d > _UINT32_MAX for d in array.shape):
        raise ValueError(f"write_idx: every dimension must be below 2**32, got shape {array.shape}")
    if compress is None:
        compress = path.suffix == ".gz"
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    # Temp file + rename: a reader never sees a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as raw:
            if compress:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                    gz.write(header)
                    gz.write(body)
            else:
                raw.write(header)
                raw.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
