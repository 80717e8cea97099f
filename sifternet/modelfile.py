"""The model-file format: one ``.npz`` of plain arrays plus JSON metadata, never pickle.

Layout: every array under its name, and ``__metadata__`` holding UTF-8 JSON bytes with
``format``, ``format_version``, ``sifternet_version``, the caller's fields, and
``sha256`` over the arrays (names, dtypes, shapes and bytes, in name order). Reading
checks all of it and names the problem.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from sifternet._version import __version__

FORMAT = "sifternet-model"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"
MAX_METADATA_BYTES = 1 << 20
#: Uncompressed size a model file may declare (a guard against zip bombs).
MAX_MODEL_BYTES = 4 << 30
#: Dtypes a model file may hold; anything else is refused on reading.
DTYPES = frozenset({"int8", "int32", "int64", "float64"})

PathLike = Union[str, "os.PathLike[str]"]


class ModelFileError(ValueError):
    """A model file that cannot be read: truncated, tampered, foreign or too new."""


def _digest(arrays: dict[str, np.ndarray]) -> str:
    sha = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def pack(metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Model-file bytes for ``arrays`` and JSON-serialisable ``metadata``."""
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sifternet_version": __version__,
        **metadata,
        "sha256": _digest(arrays),
    }
    buffer = io.BytesIO()
    encoded = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    np.savez_compressed(buffer, **arrays, **{METADATA_KEY: encoded})
    return buffer.getvalue()


def unpack(data: bytes, source: str = "model file") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, arrays) of model-file bytes; :class:`ModelFileError` says what is wrong."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            declared = sum(info.file_size for info in archive.infolist())
        if declared > MAX_MODEL_BYTES:
            raise ModelFileError(
                f"{source}: declares {declared:,} bytes uncompressed, more than the "
                f"{MAX_MODEL_BYTES:,} a model file may hold"
            )
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            names = list(archive.files)
            if METADATA_KEY not in names:
                raise ModelFileError(f"{source}: not a sifternet model (no {METADATA_KEY})")
            raw = archive[METADATA_KEY]
            if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_METADATA_BYTES:
                raise ModelFileError(f"{source}: malformed or oversized metadata")
            arrays = {name: archive[name] for name in names if name != METADATA_KEY}
    except ModelFileError:
        raise
    except Exception as error:  # untrusted bytes: zlib, zipfile, struct, numpy header...
        raise ModelFileError(
            f"{source}: not a readable .npz model file (truncated or corrupt?): "
            f"{type(error).__name__}: {error}"
        ) from error
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{source}: metadata is not valid JSON: {error}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelFileError(f"{source}: not a sifternet model (format is not {FORMAT!r})")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{source}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: written in model format {version} by sifternet "
            f"{metadata.get('sifternet_version')}; this sifternet {__version__} reads format "
            f"{FORMAT_VERSION} at most: upgrade sifternet"
        )
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise ModelFileError(f"{source}: member {name!r} is not a .npy array")
        if array.dtype.name not in DTYPES:
            raise ModelFileError(f"{source}: array {name!r} has unexpected dtype {array.dtype}")
    if metadata.get("sha256") != _digest(arrays):
        raise ModelFileError(f"{source}: checksum mismatch: the file was modified or corrupted")
    return metadata, arrays


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of the files written here: what open() would give (0666 less the umask),
#: not mkstemp's private 0600. Read once, at import.
FILE_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` that becomes ``path`` only if the block succeeds,
    so that no reader ever sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomically(path: PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: never half a file."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists (pass overwrite=True to replace it)")
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
