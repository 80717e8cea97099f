"""The model-file format: one ``.npz`` of plain arrays plus JSON metadata, never pickle.

Layout: every array under its name, and ``__metadata__`` holding UTF-8 JSON bytes with
``format``, ``format_version``, ``sifternet_version``, the caller's fields, and ``sha256``.
Format 2's digest covers the canonical JSON of every other metadata field, then the arrays
(names, dtypes, shapes and bytes, in name order); format 1 (sifternet 0.1) covered the
arrays only and is still read. Reading is bounded: a file is refused unread past
:data:`MAX_FILE_BYTES`; the archive's member names, declared sizes and ``.npy`` headers are
checked before any array is inflated; each array then inflates block by block into memory
of exactly its declared size. Every refusal is a :class:`ModelFileError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar, Union

import numpy as np

from sifternet._version import __version__

FORMAT = "sifternet-model"
FORMAT_VERSION = 2
METADATA_KEY = "__metadata__"
#: Metadata fields the format itself writes; the caller's fields are the others.
HEADER_FIELDS = ("format", "format_version", "sifternet_version", "sha256")
MAX_METADATA_BYTES = 1 << 20
#: Metadata JSON nests no deeper than this (a model's is 2 deep).
MAX_JSON_DEPTH = 8
#: Uncompressed size a model file may declare (a guard against zip bombs).
MAX_MODEL_BYTES = 4 << 30
#: Size of a model file, read no further: its arrays compressed, with room for zip overhead.
MAX_FILE_BYTES = MAX_MODEL_BYTES + (64 << 20)
#: Members a model file's archive may hold (two arrays per channel, labels, metadata).
MAX_MEMBERS = 1024
#: Dtypes a model file may hold; anything else is refused on reading.
DTYPES = frozenset({"uint8", "int8", "int32", "int64", "float64"})

_ZIP_MAGIC = b"PK\x03\x04"  # a local file header: how every .npz starts
_DIRECTORY_ENTRY = b"PK\x01\x02"  # a central directory entry: one per member
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.npy")
_MAX_HEADER_BYTES = 10_000  # numpy's own limit on a .npy header
_MAX_INT_DIGITS = 4300  # Python's int(str) limit, refused here with a clear message
_BLOCK_BYTES = 1 << 20  # inflation and reading step

PathLike = Union[str, "os.PathLike[str]"]


class ModelFileError(ValueError):
    """A model file that cannot be read: truncated, tampered, foreign or too new."""


def _short(text: object, limit: int = 400) -> str:
    """``text`` cut to ``limit`` characters, so that hostile values never flood a message."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, for JSON."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"metadata: expected JSON values, got {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """The one JSON text of ``value`` the digest covers: sorted keys, no spaces, ASCII,
    finite numbers only (ValueError otherwise)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_plain
    ).encode()


def _digest(fields: Optional[dict[str, Any]], arrays: dict[str, np.ndarray]) -> str:
    """sha256 of the metadata ``fields`` (format 2; None for format 1) and the arrays."""
    sha = hashlib.sha256()
    if fields is not None:
        text = canonical_json(fields)
        sha.update(b"metadata|%d|" % len(text))
        sha.update(text)
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        sha.update(array.reshape(-1).view(np.uint8).data)
    return sha.hexdigest()


def _too_deep(value: Any) -> bool:
    """Whether JSON ``value`` nests deeper than :data:`MAX_JSON_DEPTH` (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def pack(metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Model-file bytes for ``arrays`` and JSON-serialisable ``metadata`` (numpy scalars
    become Python numbers)."""
    for name, array in arrays.items():
        if not _NAME.fullmatch(f"{name}.npy") or name == METADATA_KEY:
            raise ValueError(f"arrays: expected names like patterns_0, got {name!r}")
        if not isinstance(array, np.ndarray) or array.dtype.name not in DTYPES:
            kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            raise TypeError(f"{name}: expected an array of {', '.join(sorted(DTYPES))}, got {kind}")
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sifternet_version": __version__,
        **metadata,
    }
    header = json.loads(canonical_json(header))  # plain Python values, as a reader sees them
    if _too_deep(header):
        raise ValueError(f"metadata: expected JSON nested at most {MAX_JSON_DEPTH} deep")
    header["sha256"] = _digest(header, arrays)
    encoded = canonical_json(header)
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata: expected at most {MAX_METADATA_BYTES:,} bytes of JSON, got {len(encoded):,}"
        )
    buffer = io.BytesIO()
    members: dict[str, Any] = {**arrays, METADATA_KEY: np.frombuffer(encoded, dtype=np.uint8)}
    np.savez_compressed(buffer, **members)
    return buffer.getvalue()


class _JsonRefused(ValueError):
    """JSON that parses, but not as a model file's metadata may."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise _JsonRefused(f"expected unique keys, got {_short(repr(twice), 80)} twice")
    return dict(pairs)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JsonRefused(f"expected finite numbers, got {_short(text, 80)}")
    return value


def _no_constant(text: str) -> Any:
    raise _JsonRefused(f"expected finite numbers, got {text}")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _JsonRefused(f"expected integers of at most {_MAX_INT_DIGITS} digits, got {len(text):,} digits")
    return int(text)


@dataclass(frozen=True)
class Member:
    """An array of a model file as its ``.npy`` header declares it, not yet inflated."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    header_bytes: int
    info: zipfile.ZipInfo

    @property
    def nbytes(self) -> int:
        """Bytes of the array's data."""
        return math.prod(self.shape) * self.dtype.itemsize


#: Raised by zip and zlib on corrupt or truncated archives.
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


class ModelReader:
    """A model file opened for reading: the archive, the metadata and every ``.npy``
    header checked, no array inflated yet (:meth:`expect`, then :meth:`arrays`)."""

    def __init__(self, data: bytes, source: str = "model file") -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected the bytes of a model file, got {type(data).__name__}")
        self.source = source
        self._data = data if isinstance(data, bytes) else bytes(data)
        if len(self._data) > MAX_FILE_BYTES:
            raise self.error(
                f"{len(self._data):,} bytes, larger than the {MAX_FILE_BYTES:,} bytes a model file may hold"
            )
        if not self._data.startswith(_ZIP_MAGIC):
            raise _not_a_zip(source, self._data[:8])
        if _directory_entries(self._data) > MAX_MEMBERS:
            raise self.unreadable(f"archive: expected at most {MAX_MEMBERS} members, got more")
        try:
            self._archive = zipfile.ZipFile(io.BytesIO(self._data))
            infos = self._archive.infolist()
        except Exception as error:  # untrusted bytes: zipfile, struct, zlib...
            raise self.unreadable(f"{type(error).__name__}: {error}") from None
        named = self._check_members(infos)
        meta = named.pop(METADATA_KEY, None)
        if meta is None:
            raise self.error(f"not a sifternet model (no {METADATA_KEY})")
        if meta.file_size > MAX_METADATA_BYTES + _MAX_HEADER_BYTES:
            raise self.error(
                f"metadata: expected at most {MAX_METADATA_BYTES:,} bytes, got {meta.file_size:,} declared"
            )
        header = self._header(METADATA_KEY, meta)
        if header.dtype != np.uint8 or len(header.shape) != 1 or header.nbytes > MAX_METADATA_BYTES:
            raise self.error(
                f"metadata: expected at most {MAX_METADATA_BYTES:,} bytes of UTF-8 JSON (uint8, 1-D), "
                f"got {header.dtype} of shape {header.shape}"
            )
        self.metadata = self._parse(self._inflate(header).tobytes())
        self.version: int = self.metadata["format_version"]
        self.members: dict[str, Member] = {
            name: self._header(name, info) for name, info in sorted(named.items())
        }
        for member in self.members.values():
            if member.dtype.name not in DTYPES or member.dtype.names is not None or member.dtype.subdtype:
                raise self.error(
                    f"{member.name}: expected an array of {', '.join(sorted(DTYPES))}, "
                    f"got {_short(member.dtype, 80)}"
                )

    # -- errors ---------------------------------------------------------------------------
    def error(self, what: str) -> ModelFileError:
        """A ModelFileError naming the file, ``what`` cut short."""
        return ModelFileError(f"{self.source}: {_short(what)}")

    def unreadable(self, why: str) -> ModelFileError:
        """The error of bytes that are no intact zip of .npy arrays."""
        return self.error(f"not a readable .npz model file (truncated or corrupt?): {why}")

    # -- the archive ----------------------------------------------------------------------
    def _check_members(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        """Members by name (without .npy): plain, unique, stored or deflated, and no more
        than :data:`MAX_MODEL_BYTES` declared in all."""
        named: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            label = _short(repr(info.filename), 80)
            if not _NAME.fullmatch(info.filename):
                raise self.error(f"archive member {label}: expected a name like patterns_0.npy")
            if info.filename[:-4] in named:
                raise self.error(f"archive member {label}: expected unique names, got it twice")
            if info.flag_bits & 0x1:
                raise self.error(f"archive member {label}: expected no encryption")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.error(
                    f"archive member {label}: expected stored or deflated, got method {info.compress_type}"
                )
            named[info.filename[:-4]] = info
        declared = sum(info.file_size for info in infos)
        if declared > MAX_MODEL_BYTES:
            raise self.error(
                f"declares {declared:,} bytes uncompressed, more than the {MAX_MODEL_BYTES:,} "
                "a model file may hold"
            )
        return named

    def _header(self, name: str, info: zipfile.ZipInfo) -> Member:
        """The member's .npy header, read alone (a few hundred bytes inflated); its declared
        size must be exactly the header's and the data's."""
        try:
            with self._archive.open(info) as stream:
                try:
                    version = np.lib.format.read_magic(stream)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, _MAX_HEADER_BYTES)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, _MAX_HEADER_BYTES)
                    else:
                        raise ValueError(f"expected .npy format 1.0 or 2.0, got {version}")
                except _CORRUPT:
                    raise
                except Exception as error:  # numpy's header parser: ValueError, SyntaxError...
                    raise self.error(
                        f"{name}: expected a .npy array, got {type(error).__name__}: {error}"
                    ) from None
                header_bytes = stream.tell()
        except ModelFileError:
            raise
        except Exception as error:  # zipfile, zlib
            raise self.unreadable(f"{name}: {type(error).__name__}: {error}") from None
        if any(side < 0 for side in shape):
            raise self.error(f"{name}: expected a shape of sizes >= 0, got {_short(shape, 80)}")
        member = Member(name, dtype, tuple(int(side) for side in shape), fortran, header_bytes, info)
        if info.file_size != header_bytes + member.nbytes:
            raise self.error(
                f"{name}: declares {info.file_size:,} bytes uncompressed, "
                f"expected {header_bytes + member.nbytes:,} "
                f"(its .npy header and {_short(dtype, 40)} data of shape {_short(shape, 80)})"
            )
        return member

    def _inflate(
        self, member: Member, check: Optional[Callable[[str, np.ndarray], None]] = None
    ) -> np.ndarray:
        """The member's array, inflated a block at a time (``check(name, block)`` may refuse
        the first block before the whole array is allocated)."""
        count, itemsize = math.prod(member.shape), member.dtype.itemsize
        step = max(1, _BLOCK_BYTES // max(itemsize, 1))
        flat: Optional[np.ndarray] = None
        try:
            with self._archive.open(member.info) as stream:
                stream.read(member.header_bytes)
                done = 0
                while done < count:
                    n = min(step, count - done)
                    chunk = stream.read(n * itemsize)
                    if len(chunk) != n * itemsize:
                        raise EOFError(
                            f"{member.name}: data ends after {done * itemsize + len(chunk):,} bytes"
                        )
                    block = np.frombuffer(chunk, member.dtype)
                    if check is not None:
                        try:
                            check(member.name, block)
                        except (ValueError, TypeError) as error:
                            raise self.error(str(error)) from None
                    if flat is None:
                        flat = np.empty(count, member.dtype)
                    flat[done : done + n] = block
                    done += n
                if stream.read(1):
                    raise self.error(f"{member.name}: expected {member.nbytes:,} bytes of data, got more")
        except ModelFileError:
            raise
        except Exception as error:  # zipfile, zlib: truncated or corrupt data
            raise self.unreadable(f"{member.name}: {type(error).__name__}: {error}") from None
        if flat is None:
            flat = np.empty(count, member.dtype)
        return flat.reshape(member.shape, order="F" if member.fortran_order else "C")

    # -- the metadata ---------------------------------------------------------------------
    def _parse(self, text: bytes) -> dict[str, Any]:
        """The metadata JSON, strict: unique keys, finite numbers, bounded digits and depth,
        and the format's own fields checked."""
        try:
            metadata = json.loads(
                text.decode("utf-8"),
                object_pairs_hook=_unique_keys,
                parse_constant=_no_constant,
                parse_float=_finite_float,
                parse_int=_bounded_int,
            )
        except _JsonRefused as error:
            raise self.error(f"metadata: {error}") from None
        except RecursionError:
            raise self.error(
                f"metadata: expected JSON nested at most {MAX_JSON_DEPTH} deep, got deeper"
            ) from None
        except ValueError as error:  # UnicodeDecodeError, JSONDecodeError
            raise self.error(f"metadata: expected UTF-8 JSON, got {type(error).__name__}: {error}") from None
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise self.error(f"not a sifternet model (format is not {FORMAT!r})")
        if _too_deep(metadata):
            raise self.error(f"metadata: expected JSON nested at most {MAX_JSON_DEPTH} deep, got deeper")
        version, writer = metadata.get("format_version"), metadata.get("sifternet_version")
        if type(version) is not int or version < 1:
            raise self.error(f"format_version: expected an int >= 1, got {_short(repr(version), 80)}")
        if not isinstance(writer, str):
            raise self.error(f"sifternet_version: expected a version string, got {_short(repr(writer), 80)}")
        if version > FORMAT_VERSION:
            raise self.error(
                f"written in model format {version} by sifternet {_short(writer, 40)}; this sifternet "
                f"{__version__} reads format {FORMAT_VERSION} at most: upgrade sifternet"
            )
        digest = metadata.get("sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise self.error(f"sha256: expected 64 hex digits, got {_short(repr(digest), 80)}")
        return metadata

    # -- the arrays -----------------------------------------------------------------------
    def expect(
        self, layout: dict[str, tuple[tuple[str, ...], tuple[int, ...]]], optional: tuple[str, ...] = ()
    ) -> None:
        """ModelFileError unless the arrays are exactly ``layout`` (name -> (dtype names,
        shape)), those named ``optional`` possibly absent: the budget, from headers alone."""
        for name in self.members:
            if name not in layout:
                raise self.error(f"{name}: unexpected array (expected {', '.join(layout)})")
        for name, (dtypes, shape) in layout.items():
            member = self.members.get(name)
            if member is None:
                if name in optional:
                    continue
                raise self.error(f"{name}: missing (expected {' or '.join(dtypes)} of shape {shape})")
            if member.dtype.name not in dtypes or member.shape != shape:
                raise self.error(
                    f"{name}: expected {' or '.join(dtypes)} of shape {shape}, "
                    f"got {member.dtype} of shape {member.shape}"
                )

    def arrays(self, check: Optional[Callable[[str, np.ndarray], None]] = None) -> dict[str, np.ndarray]:
        """Every array, inflated into memory of its declared size, the checksum verified.
        ``check(name, block)`` may refuse an array by its first blocks (ValueError)."""
        arrays = {name: self._inflate(member, check) for name, member in self.members.items()}
        fields = None if self.version == 1 else {k: v for k, v in self.metadata.items() if k != "sha256"}
        if self.metadata["sha256"] != _digest(fields, arrays):
            raise self.error("checksum mismatch: the file was modified or corrupted")
        return arrays


def _directory_entries(data: bytes) -> int:
    """At least as many as the central directory entries zipfile would parse (each starts
    with its signature), counted before zipfile builds an object for each: in the
    directory the end record locates as zipfile does, else anywhere in ``data``."""
    end = len(data) - 22  # the end record, when the archive has no comment
    if end >= 20 and data[end : end + 4] == b"PK\x05\x06" and data[-2:] == b"\0\0":
        if data[end - 20 : end - 16] != b"PK\x06\x07":  # no zip64 record to redirect zipfile
            size = int.from_bytes(data[end + 12 : end + 16], "little")
            return data.count(_DIRECTORY_ENTRY, max(0, end - size), end)
    return data.count(_DIRECTORY_ENTRY)


def _not_a_zip(source: str, head: bytes) -> ModelFileError:
    return ModelFileError(
        f"{source}: not a readable .npz model file (truncated or corrupt?): expected a zip archive "
        f"starting {_ZIP_MAGIC!r}, got {bytes(head)!r}"
    )


def unpack(data: bytes, source: str = "model file") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, arrays) of model-file bytes; :class:`ModelFileError` says what is wrong."""
    reader = ModelReader(data, source)
    return reader.metadata, reader.arrays()


def read_model_file(path: PathLike) -> bytes:
    """The bytes of the file at ``path``, refused (ModelFileError) before reading past
    :data:`MAX_FILE_BYTES` or past the first bytes of anything but a zip archive."""
    source = str(path)
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        regular = stat.S_ISREG(info.st_mode)
        if regular and info.st_size > MAX_FILE_BYTES:
            raise ModelFileError(
                f"{source}: {info.st_size:,} bytes, larger than the {MAX_FILE_BYTES:,} bytes "
                "a model file may hold"
            )
        head = handle.read(len(_ZIP_MAGIC))
        if head != _ZIP_MAGIC:
            raise _not_a_zip(source, head)
        chunks = [head]
        if regular:  # one read of the whole file, no copy
            handle.seek(0)
            chunks = []
        size, step = sum(map(len, chunks)), info.st_size + 1 if regular else _BLOCK_BYTES
        while size <= MAX_FILE_BYTES:
            chunk = handle.read(min(step, MAX_FILE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size, step = size + len(chunk), _BLOCK_BYTES
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{source}: larger than the {MAX_FILE_BYTES:,} bytes a model file may hold")
    return b"".join(chunks)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of the files written here: what open() would give (0666 less the umask),
#: not mkstemp's private 0600. Read once, at import.
FILE_MODE = 0o666 & ~_umask()
#: The suffix of every temporary file, so that no reader takes one for an image or a model.
TEMP_SUFFIX = ".sifternet-tmp"


def temp_prefix(target: Path) -> str:
    """The start of the name of ``target``'s temporaries: ``.<name>.``."""
    name = os.fsencode(target.name)[:96]  # room for the random part and the suffix
    return "." + name.decode("utf-8", "surrogateescape") + "."


@contextmanager
def temporary_path(target: PathLike) -> Iterator[Path]:
    """A new empty temporary file beside ``target``, removed when the block ends."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target), suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` that becomes ``path`` (synced to disk, the usual
    permissions) only if the block succeeds: no reader ever sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with temporary_path(target) as tmp:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)


def write_atomically(path: PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: never half a file."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists (pass overwrite=True to replace it)")
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


Stored = TypeVar("Stored", bound="StoredModel")


class StoredModel:
    """Model files and pickling for a purifier class that writes its model as bytes
    (``to_bytes``), reads them back (``from_bytes``) and is built from its ``config``."""

    config: Any
    num_threads: Optional[int]

    @property
    def is_fitted(self) -> bool:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def from_bytes(
        cls: type[Stored], data: bytes, *, num_threads: Optional[int] = None, source: str = "model file"
    ) -> Stored:
        raise NotImplementedError

    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        """Write the model file atomically; an existing file needs ``overwrite=True``."""
        write_atomically(path, self.to_bytes(), overwrite=overwrite)

    @classmethod
    def load(cls: type[Stored], path: PathLike, *, num_threads: Optional[int] = None) -> Stored:
        """Read a model file written by :meth:`save` (never unpickles; reads no further than
        a model file can go)."""
        return cls.from_bytes(read_model_file(path), num_threads=num_threads, source=str(path))

    def __getstate__(self) -> dict[str, Any]:
        if not self.is_fitted:
            return {"config": asdict(self.config), "num_threads": self.num_threads}
        return {"model": self.to_bytes(), "num_threads": self.num_threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        kind = type(self)
        if "model" in state:
            source = f"pickled {kind.__name__}"
            restored = kind.from_bytes(state["model"], num_threads=state["num_threads"], source=source)
        else:
            restored = kind(num_threads=state["num_threads"], **state["config"])  # type: ignore[call-arg]
        self.__dict__.update(restored.__dict__)
