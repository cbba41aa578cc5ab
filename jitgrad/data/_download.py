"""Fetch files from mirrors into a temp file, verify their MD5 and move them into place.

Nothing here knows about any dataset: ``datasets.py`` says which files, from
where, with which checksums.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Iterable

from tqdm.auto import tqdm

__all__ = ["ChecksumError", "DownloadError", "file_md5", "verify_md5", "download"]

_CHUNK = 1 << 20
#: Seconds to wait for a mirror to answer (and for each read) before trying the next one.
TIMEOUT = 30.0
#: Seconds one file may take from one mirror in all: a server that trickles bytes (each read
#: within TIMEOUT) must not hold the download forever.
DEADLINE = 600.0
#: Bytes per second below which a mirror is abandoned, measured once GRACE seconds have passed.
MIN_RATE = 16 * 1024
GRACE = 20.0
#: Bytes asked for per read: small enough that the deadline and rate are checked often.
_READ = 64 * 1024

#: (resolved path, size, mtime_ns) -> md5 of files hashed by this process. A file
#: is hashed once per process; replacing it changes size or mtime, so it is hashed again.
_MD5_CACHE: dict[tuple[str, int, int], str] = {}


class ChecksumError(ValueError):
    """A file's MD5 is not the one published for it."""


class DownloadError(OSError):
    """No mirror delivered a file (network down, file missing on every mirror)."""


def file_md5(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, cached per process by path, size and modification time."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = _MD5_CACHE.get(key)
    if digest is None:
        h = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = _MD5_CACHE[key] = h.hexdigest()
    return digest


def verify_md5(path: str | os.PathLike[str], expected: str) -> None:
    """Raise `ChecksumError` if ``path``'s MD5 is not ``expected``.

    The file is left in place: it may be the user's own copy, or on a
    read-only share; the message says to delete it.
    """
    actual = file_md5(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: MD5 {actual} does not match the published {expected}; "
            "the file is corrupt or a different version. Delete it so that it is downloaded again."
        )


def _open_url(url: str, timeout: float) -> BinaryIO:
    """Open ``url`` for reading (http, https or file). Tests replace this function."""
    request = urllib.request.Request(url, headers={"User-Agent": "jitgrad"})
    return urllib.request.urlopen(request, timeout=timeout)


class _TooSlow(OSError):
    """A mirror exceeded the total deadline or fell below the minimum rate."""


def _check_pace(start: float, received: int) -> None:
    elapsed = time.monotonic() - start
    if elapsed > DEADLINE:
        raise _TooSlow(f"gave up after {elapsed:.0f} s (deadline {DEADLINE:.0f} s), {received} bytes received")
    if elapsed > GRACE and received < MIN_RATE * elapsed:
        raise _TooSlow(f"too slow: {received / elapsed:.0f} B/s over {elapsed:.0f} s "
                       f"(minimum {MIN_RATE:.0f} B/s)")


def _fetch(url: str, dest: Path, progress: bool) -> str:
    """Stream ``url`` into ``dest`` with a progress bar; return the MD5 of what arrived.

    Raises an ``OSError`` when the mirror overruns ``DEADLINE`` or trickles below
    ``MIN_RATE`` (checked after every read; a read itself waits at most ``TIMEOUT``).
    """
    h = hashlib.md5(usedforsecurity=False)
    start = time.monotonic()
    received = 0
    with _open_url(url, TIMEOUT) as response, open(dest, "wb") as out:
        length = getattr(response, "headers", {}).get("Content-Length")
        total = int(length) if length and str(length).isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=dest.name.split(".part")[0].lstrip("."), disable=not progress, leave=False) as bar:
            # read1 returns what has arrived (up to _READ) instead of waiting for a full chunk.
            read = response.read1 if isinstance(response, http.client.HTTPResponse) else response.read
            while chunk := read(_READ):
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
                received += len(chunk)
                _check_pace(start, received)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


def download(urls: Iterable[str], dest: str | os.PathLike[str], md5: str, *, progress: bool = True) -> Path:
    """Download a file from the first mirror that delivers it intact.

    Each mirror's bytes go to a temp file beside ``dest``; only a file whose
    MD5 matches is renamed to ``dest``, so ``dest`` is never partial or
    unverified. A failed or mismatched attempt deletes its temp file and the
    next mirror is tried.

    Parameters
    ----------
    urls : iterable of str
        Full URLs of the same file, in order of preference.
    dest : str or os.PathLike
        Final path; its directory is created if needed.
    md5 : str
        Expected hex MD5.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    ChecksumError
        If some mirror answered but none with the right bytes.
    DownloadError
        If no mirror could be reached; the message lists each URL and its error.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    mismatch = False
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            actual = _fetch(url, tmp, progress)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            failures.append(f"{url}: {exc}")
            continue
        except BaseException:  # Ctrl-C mid-download: leave no partial file behind.
            tmp.unlink(missing_ok=True)
            raise
        if actual != md5.lower():
            tmp.unlink()
            mismatch = True
            failures.append(f"{url}: MD5 {actual} does not match the published {md5}")
            continue
        os.replace(tmp, dest)
        st = dest.stat()  # the bytes were hashed as they arrived: no second pass
        _MD5_CACHE[(str(dest.resolve()), st.st_size, st.st_mtime_ns)] = actual
        return dest
    details = "\n  ".join(failures) if failures else "(no mirrors given)"
    if mismatch:
        raise ChecksumError(f"downloaded {dest.name} did not verify; the partial download was deleted:\n  {details}")
    raise DownloadError(
        f"could not download {dest.name}:\n  {details}\n"
        f"To work offline, copy the file to {dest} yourself (the data directory comes from the root "
        f"argument, else the JITGRAD_DATA environment variable, else ~/.cache/jitgrad)."
    )
