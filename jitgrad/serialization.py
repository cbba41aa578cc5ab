"""Save and load checkpoints as safetensors files, atomically and without pickle.

A checkpoint is either a flat model ``state_dict()`` (name -> array) or any
nested structure of dicts, lists and tuples whose leaves are arrays, numbers,
strings, booleans or ``None`` (an optimizer's ``state_dict()`` is one).

Format: a plain safetensors file. Each array is one tensor, named by its path
in the structure (``0.weight`` for a model, ``state.3.exp_avg`` for an
optimizer), so other safetensors tools read the arrays under natural names.
Everything that is not an array (the nesting, step counts, hyper-parameters)
lives as JSON in the header's ``__metadata__``, next to jitgrad's version and
the dtypes of the arrays. Nothing is ever unpickled: loading a file can only
produce arrays and JSON values.

Writes are atomic: the bytes go to a temporary file in the destination folder,
are flushed and fsynced, and ``os.replace`` swaps it in, so a crash or an
error mid-write leaves the previous checkpoint intact and no temp file behind.
A save killed outright (``kill -9``, power loss) can leave its temp file; the
next save to the same path deletes such files once they are a minute old.
Checkpoints are created with mode 0600 (owner read/write only): they may hold
a model that is not meant to be shared.

Integrity: the metadata stores the CRC32 of every tensor's bytes (in name
order) under ``jitgrad.crc32``; :func:`load` recomputes it and raises on a
mismatch, so a flipped bit is an error, not a silently different model.
``load(path, verify=False)`` skips the check.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["save", "load"]

#: Key in ``__metadata__`` marking a file written by jitgrad.
_FORMAT_KEY = "format"
_FORMAT = "jitgrad"
#: Key holding the JSON skeleton of the saved structure.
_STRUCTURE_KEY = "jitgrad.structure"
#: Key holding the CRC32 (hex) of the tensors' bytes, in name order.
_CRC_KEY = "jitgrad.crc32"
#: A key safetensors reserves for the header's metadata: no tensor may have this name.
_RESERVED = "__metadata__"
#: A temp file of a save to the same path, unmodified this many seconds, is from a killed save.
_STALE_TEMP_SECONDS = 60.0
#: safetensors' own bound on the header, to reject absurd lengths before reading.
_MAX_HEADER_BYTES = 100 * 1024 * 1024

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_ITEMS = "__items__"


def _version() -> str:
    # Imported lazily: jitgrad/__init__.py may import this module.
    import jitgrad

    return str(getattr(jitgrad, "__version__", "unknown"))


def _host_array(value: Any) -> np.ndarray | None:
    """The value as a C-contiguous NumPy array, or None when it is not array-like.

    Accepts NumPy arrays, jitgrad Tensors (via ``.numpy()``) and device arrays
    (via ``copy_to_host``), so a state dict from any backend can be saved.
    """
    # np.ascontiguousarray would turn a 0-d array into shape (1,); np.require keeps it 0-d.
    if isinstance(value, np.ndarray):
        return np.require(value, requirements="C")
    if hasattr(value, "copy_to_host"):
        return np.require(value.copy_to_host(), requirements="C")
    if hasattr(value, "numpy") and hasattr(value, "shape") and hasattr(value, "dtype"):
        return np.require(value.numpy(), requirements="C")
    return None


def _encode(obj: Any, path: str, tensors: dict[str, np.ndarray]) -> Any:
    """JSON skeleton of ``obj``; arrays are moved into ``tensors`` under their path."""
    array = _host_array(obj)
    if array is not None:
        if path in tensors:
            raise ValueError(f"save: two entries map to the tensor name {path!r}; "
                             "rename keys so that no key contains '.' ambiguously")
        if not path:
            raise TypeError("save: expected a dict (state dict) or nested structure, got a bare array")
        if path == _RESERVED:
            raise ValueError(f"save: {_RESERVED!r} is reserved by the safetensors format and cannot name an "
                             "entry; rename that key")
        tensors[path] = array
        return {_TENSOR: path}
    if isinstance(obj, dict):
        prefix = f"{path}." if path else ""
        items = [(key, _encode(value, f"{prefix}{key}", tensors)) for key, value in obj.items()]
        for key, _ in items:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"save: dict keys must be str or int, got {type(key).__name__} at {path or '<root>'!r}")
        plain = all(isinstance(key, str) and not key.startswith("__") for key, _ in items)
        # Int keys (optimizer state is indexed by parameter number) do not
        # survive a JSON object, so such dicts are stored as a list of pairs.
        return dict(items) if plain else {_ITEMS: [[key, value] for key, value in items]}
    if isinstance(obj, (list, tuple)):
        prefix = f"{path}." if path else ""
        encoded = [_encode(value, f"{prefix}{i}", tensors) for i, value in enumerate(obj)]
        return {_TUPLE: encoded} if isinstance(obj, tuple) else encoded
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"save: cannot store a {type(obj).__name__} at {path or '<root>'!r}; "
                    "leaves must be arrays, numbers, strings, booleans or None")


def _decode(node: Any, tensors: dict[str, np.ndarray], name: str) -> Any:
    """Rebuild the structure from its JSON skeleton and the loaded tensors."""
    if isinstance(node, dict):
        if _TENSOR in node:
            key = node[_TENSOR]
            if key not in tensors:
                raise ValueError(f"load: {name} is corrupt: metadata names tensor {key!r}, which the file lacks")
            return tensors[key]
        if _TUPLE in node:
            return tuple(_decode(value, tensors, name) for value in node[_TUPLE])
        if _ITEMS in node:
            return {key: _decode(value, tensors, name) for key, value in node[_ITEMS]}
        return {key: _decode(value, tensors, name) for key, value in node.items()}
    if isinstance(node, list):
        return [_decode(value, tensors, name) for value in node]
    return node


def _payload_crc32(tensors: dict[str, np.ndarray]) -> str:
    """CRC32 of every tensor's bytes, in name order, as 8 hex digits."""
    crc = 0
    for key in sorted(tensors):
        array = np.require(tensors[key], requirements="C")
        crc = zlib.crc32(key.encode("utf-8"), crc)
        crc = zlib.crc32(array.reshape(-1).view(np.uint8) if array.size else b"", crc)
    return f"{crc:08x}"


def _remove_stale_temps(directory: Path, name: str) -> None:
    """Delete temp files of earlier saves to ``name`` that were killed (untouched for a minute).

    A save in progress in another process keeps writing its temp file, so its
    modification time stays recent and it is left alone.
    """
    now = time.time()
    for temp in directory.glob(f".{name}.*.tmp"):
        try:
            if now - temp.stat().st_mtime > _STALE_TEMP_SECONDS:
                temp.unlink()
        except OSError:
            pass  # gone already, or not ours to delete: not this save's business


def _write_bytes(file: BinaryIO, data: bytes) -> None:
    """Write ``data`` to ``file``; a separate function so tests can interrupt a write."""
    file.write(data)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; directories cannot be opened on Windows, where this is skipped."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a state dict (flat or nested) to ``path`` as a safetensors file, atomically.

    Parameters
    ----------
    obj : dict
        A model's ``state_dict()`` (name -> array of any shape and dtype) or a
        nested structure such as an optimizer's ``state_dict()``. Arrays may be
        NumPy arrays, Tensors or device arrays; they are stored as host copies.
    path : str or os.PathLike
        Destination file. Its folder must exist. An existing file is replaced
        only once the new one is completely written and synced.

    Raises
    ------
    TypeError
        If ``obj`` is not a dict or holds a value that cannot be stored.
    ValueError
        If two entries would be stored under the same tensor name.
    """
    from safetensors.numpy import save as encode_safetensors

    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (a state_dict), got {type(obj).__name__}")
    if _RESERVED in obj:
        raise ValueError(f"save: the key {_RESERVED!r} is reserved by the safetensors format; rename it")
    path = Path(path)
    tensors: dict[str, np.ndarray] = {}
    structure = _encode(obj, "", tensors)
    dtypes = sorted({str(array.dtype) for array in tensors.values()})
    metadata = {
        _FORMAT_KEY: _FORMAT,
        "jitgrad_version": _version(),
        "dtype": ",".join(dtypes),
        _STRUCTURE_KEY: json.dumps(structure, allow_nan=True),
        _CRC_KEY: _payload_crc32(tensors),
    }
    try:
        data = encode_safetensors(tensors, metadata=metadata)
    except Exception as error:  # safetensors raises its own types for unsupported dtypes
        raise TypeError(f"save: cannot encode {path}: {error}") from error

    directory = path.parent if str(path.parent) else Path(".")
    _remove_stale_temps(directory, path.name)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # mkstemp's mode today; stated here so it stays the contract
        with os.fdopen(fd, "wb") as file:
            _write_bytes(file, data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        # Leave no half-written temp file behind; the previous checkpoint is untouched.
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _read_header(data: bytes, name: str) -> dict[str, Any]:
    """Parse and sanity-check the safetensors header, raising ``ValueError`` naming the file."""
    if len(data) < 8:
        raise ValueError(f"load: {name} is not a safetensors file (only {len(data)} bytes, no header length)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER_BYTES:
        raise ValueError(f"load: {name} is not a safetensors file (header length {header_len} is implausible)")
    if 8 + header_len > len(data):
        raise ValueError(f"load: {name} is truncated or corrupt (header needs {header_len} bytes, "
                         f"file has {len(data) - 8} after the length)")
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"load: {name} is not a safetensors file (header is not JSON: {error})") from None
    if not isinstance(header, dict):
        raise ValueError(f"load: {name} is not a safetensors file (header is a {type(header).__name__}, not an object)")
    body = len(data) - 8 - header_len
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ValueError(f"load: {name} is corrupt (tensor {key!r} has no valid data_offsets)")
        if offsets[1] > body:
            raise ValueError(f"load: {name} is truncated (tensor {key!r} ends at byte {offsets[1]}, "
                             f"data section has {body})")
    return header


def load(path: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (or any safetensors file).

    Parameters
    ----------
    path : str or os.PathLike
        A safetensors file.
    verify : bool
        Check the CRC32 that :func:`save` stored (files without one, such as
        other tools' safetensors files, load unchecked). ``False`` skips it.

    Returns
    -------
    dict
        The saved structure, rebuilt: name -> ``np.ndarray`` for a model's
        state dict, the nested dict for an optimizer's. Arrays are fresh,
        writable NumPy copies; loading never touches a model. A safetensors
        file not written by jitgrad loads as a flat name -> array dict.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, corrupt (CRC32 mismatch, hand-edited
        metadata that does not describe the tensors) or not a safetensors
        file; the message names the file.
    """
    from safetensors.numpy import load as decode_safetensors

    path = Path(path)
    name = str(path)
    data = path.read_bytes()
    header = _read_header(data, name)
    try:
        tensors = decode_safetensors(data)
    except Exception as error:  # SafetensorError and dtype errors alike mean a bad file
        raise ValueError(f"load: {name} is corrupt or not a safetensors file ({error})") from None
    # Own the memory: decoded arrays may be read-only views of the file's bytes.
    tensors = {key: np.array(value, copy=True) for key, value in tensors.items()}
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or metadata.get(_FORMAT_KEY) != _FORMAT or _STRUCTURE_KEY not in metadata:
        return tensors
    if verify and _CRC_KEY in metadata:
        actual = _payload_crc32(tensors)
        if actual != metadata[_CRC_KEY]:
            raise ValueError(f"load: {name} is corrupt: CRC32 of its tensors is {actual}, the file records "
                             f"{metadata[_CRC_KEY]!r} (pass verify=False to load it anyway)")
    try:
        structure = json.loads(metadata[_STRUCTURE_KEY])
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"load: {name} is corrupt (jitgrad metadata is not JSON: {error})") from None
    try:
        result = _decode(structure, tensors, name)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
        if str(error).startswith("load: "):
            raise
        # Hand-edited metadata: a skeleton of the wrong shape (e.g. an __items__ entry that is not a pair).
        raise ValueError(f"load: {name} is corrupt (jitgrad metadata does not describe the saved structure: "
                         f"{type(error).__name__}: {error})") from None
    if not isinstance(result, dict):
        raise ValueError(f"load: {name} is corrupt (jitgrad metadata does not describe a dict)")
    return result
