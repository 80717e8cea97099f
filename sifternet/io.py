"""Images in and out: folders of image files, ``.npy`` / ``.npz`` arrays, preview grids, and
the bookkeeping of folder runs (atomic writes, output locks, manifests).

Colour images are RGB in memory (as in the data sets the package reads); OpenCV's BGR order is
converted at the file boundary only. Files are read and written as bytes here, OpenCV only
decodes and encodes, so any file name the system allows works. Before an image is decoded its
header is parsed: the file must be complete, 8-bit, and of the expected size, so that no
pixel is allocated for an image that would be refused. Arrays are refused from their ``.npy``
header (shape, dtype, size) before anything is allocated.

A temporary file is named ``.<name>.<random>.sifternet-tmp`` beside its target, which no
reader takes for an image and :func:`remove_temporaries` finds after a killed run.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import stat
import struct
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, NamedTuple, Optional, Sequence

import cv2
import numpy as np

from sifternet.modelfile import (
    FILE_MODE,
    TEMP_SUFFIX,
    PathLike,
    temp_prefix,
    write_atomically,
)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"})
#: The suffix of every temporary file written here (never an image suffix).
#: The lock file inside an output folder (beside an array output: ``.<name>.sifternet-lock``).
LOCK_NAME = ".sifternet-lock"
#: The record of a folder run's finished outputs, in the output folder.
MANIFEST_NAME = ".sifternet-manifest.json"
MANIFEST_FORMAT = "sifternet-purify-manifest"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 28
#: The largest image file read, and the most pixels of an image whose size nothing else fixes.
MAX_IMAGE_FILE_BYTES = 1 << 30
MAX_IMAGE_PIXELS = 1 << 26
#: Deflate inflates at most about 1032:1; a member claiming more is refused unread.
_DEFLATE_RATIO = 1032


def shown(path: PathLike) -> str:
    """``path`` printable on any terminal: bytes that are not UTF-8 as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# -- reading files --------------------------------------------------------------------
_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, in words."""
    return _KINDS.get(stat.S_IFMT(mode), "a regular file" if stat.S_ISREG(mode) else "a special file")


def _unreadable(path: PathLike, error: OSError) -> OSError:
    """``error`` (its type and errno kept) with a one-line message naming ``path``."""
    reason = (error.strerror or str(error)).lower()
    named = type(error)(f"{shown(path)}: expected a readable file, got {reason}")
    named.errno = error.errno
    return named


@contextmanager
def open_regular(path: PathLike) -> Iterator[IO[bytes]]:
    """``path`` opened for reading if it is a regular file (never blocks on a named pipe)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise _unreadable(path, error) from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{shown(path)}: expected a regular file, got {file_kind(mode)}")
        yield handle


def read_file(path: PathLike, limit: int) -> bytes:
    """The bytes of the regular file ``path``, refused past ``limit`` bytes."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise ValueError(f"{shown(path)}: expected at most {limit:,} bytes, got {size:,}")
        try:
            return handle.read(size)
        except OSError as error:
            raise _unreadable(path, error) from None


# -- image headers ----------------------------------------------------------------------
class _Refused(ValueError):
    """What is wrong with an image file, without its name (added by the caller)."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header declares: its format, size and (when the header fixes
    it) the channels :func:`read_image` gives, 1 (grey) or 3 (colour)."""

    kind: str  # "PNG", "JPEG", "BMP", "PNM", "TIFF" or "WebP"
    height: int
    width: int
    channels: Optional[int] = None
    detail: str = ""  # "palette", "grey+alpha", ...

    @property
    def shape(self) -> Optional[tuple[int, ...]]:
        """The shape :func:`read_image` returns, if the header fixes it."""
        if self.channels is None:
            return None
        return (self.height, self.width) if self.channels == 1 else (self.height, self.width, 3)

    def describe(self, shape: Optional[tuple[int, ...]] = None) -> str:
        """E.g. ``a palette PNG of shape (28, 28, 3)``."""
        shape = shape or self.shape
        size = f"of shape {shape}" if shape else f"of {self.height} x {self.width} pixels"
        what = f"{self.detail} {self.kind}" if self.detail else self.kind
        return f"{'an' if what[0] in 'AEFHILMNORSX' else 'a'} {what} {size}"


def _truncated(kind: str, why: str) -> _Refused:
    return _Refused(f"expected a complete {kind}, got a truncated file ({why})")


def _png(data: bytes) -> ImageHeader:
    """Walk the chunks (CRCs checked) up to IEND."""
    view, pos, header = memoryview(data), 8, None
    while True:
        if pos + 12 > len(data):
            raise _truncated("PNG", "no IEND chunk")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise _truncated("PNG", f"its {kind.decode('latin-1')} chunk runs past the end")
        if zlib.crc32(view[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            raise _Refused(f"expected a valid PNG, got a corrupt {kind.decode('latin-1')} chunk (CRC)")
        if header is None:
            if kind != b"IHDR" or length != 13:
                raise _Refused("expected a valid PNG, got no IHDR chunk first")
            width, height, depth, colour = struct.unpack_from(">IIBB", data, pos + 8)
            if depth > 8:
                raise _Refused(f"expected 8-bit pixels, got a {depth}-bit PNG")
            details = {0: (1, ""), 2: (3, ""), 3: (3, "palette"), 4: (3, "grey+alpha"), 6: (3, "RGBA")}
            if colour not in details:
                raise _Refused(f"expected a valid PNG, got colour type {colour}")
            channels, detail = details[colour]
            header = ImageHeader("PNG", height, width, channels, detail)
        elif kind == b"IEND":
            return header
        pos = end


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers: the image's size
_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # a marker after entropy-coded data


def _jpeg(data: bytes) -> ImageHeader:
    """Walk the markers, and the scans, up to the end-of-image marker."""
    pos, header = 2, None
    while True:
        if pos + 2 > len(data):
            raise _truncated("JPEG", "no end-of-image marker")
        if data[pos] != 0xFF:
            raise _Refused(f"expected a valid JPEG, got no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            if header is None:
                raise _Refused("expected a valid JPEG, got no frame header")
            return header
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > len(data):
            raise _truncated("JPEG", "no end-of-image marker")
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > len(data) or end < pos + 4:
            raise _truncated("JPEG", "no end-of-image marker")
        if marker in _SOF:
            if end < pos + 10:
                raise _Refused("expected a valid JPEG, got a short frame header")
            depth, height, width, components = struct.unpack_from(">BHHB", data, pos + 4)
            if depth != 8:
                raise _Refused(f"expected 8-bit pixels, got a {depth}-bit JPEG")
            if height == 0 or components not in (1, 3, 4):
                raise _Refused(f"expected a JPEG of known height and 1, 3 or 4 components, got {components}")
            detail = "CMYK" if components == 4 else ""
            header = ImageHeader("JPEG", height, width, 1 if components == 1 else 3, detail)
        pos = end
        if marker == 0xDA:  # a scan: entropy-coded data up to the next marker
            found = _ENTROPY_END.search(data, pos)
            if found is None:
                raise _truncated("JPEG", "no end-of-image marker")
            pos = found.start()


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise _truncated("BMP", "no header")
    offset, size = struct.unpack_from("<II", data, 10)
    if size == 12:
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
        compression = 0
    elif size >= 40 and len(data) >= 34:
        width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
    else:
        raise _Refused(f"expected a valid BMP, got a {size}-byte header")
    height = abs(height)
    if width <= 0 or height == 0:
        raise _Refused(f"expected a valid BMP, got {width} x {height} pixels")
    if compression in (0, 3) and offset + (width * bits + 31) // 32 * 4 * height > len(data):
        raise _truncated("BMP", "fewer pixels than its header declares")
    return ImageHeader("BMP", height, width, 3 if bits > 8 else None)  # a palette may be grey


_PNM_FIELD = re.compile(rb"(?:\s|#[^\r\n]*)*(\d+)")


def _pnm(data: bytes) -> ImageHeader:
    kind, fields, pos = data[1] - ord("0"), [], 2
    for _ in range(2 if kind in (1, 4) else 3):
        found = _PNM_FIELD.match(data, pos)
        if found is None:
            raise _Refused("expected a valid PNM, got an incomplete header")
        fields.append(int(found.group(1)))
        pos = found.end()
    pos += 1  # the one white-space byte before the pixels
    width, height, top = fields[0], fields[1], fields[2] if len(fields) > 2 else 1
    if width == 0 or height == 0 or not 0 < top < 65536:
        raise _Refused(f"expected a valid PNM, got {width} x {height} pixels of maximum {top}")
    if top > 255:
        raise _Refused("expected 8-bit pixels, got a 16-bit PNM")
    channels = 3 if kind in (3, 6) else 1
    need = {4: (width + 7) // 8 * height, 5: width * height, 6: 3 * width * height}.get(kind, 0)
    if pos + need > len(data):
        raise _truncated("PNM", "fewer pixels than its header declares")
    return ImageHeader("PNM", height, width, channels)


_TIFF_TYPES = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8


def _tiff(data: bytes) -> ImageHeader:
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", data, 2)[0] == 43
    try:
        ifd = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        count = struct.unpack_from(order + ("Q" if big else "H"), data, ifd)[0]
        tags: dict[int, list[int]] = {}
        size, field = (20, 8) if big else (12, 4)
        for k in range(min(count, 4096)):
            at = ifd + (8 if big else 2) + k * size
            tag, kind, n = struct.unpack_from(order + ("HHQ" if big else "HHI"), data, at)
            if kind not in _TIFF_TYPES or tag not in (256, 257, 258, 262, 273, 277, 279, 324, 325):
                continue
            code = _TIFF_TYPES[kind]
            where = at + size - field  # the values, or where they are when they do not fit
            if n * struct.calcsize(code) > field:
                where = struct.unpack_from(order + ("Q" if big else "I"), data, where)[0]
            tags[tag] = list(struct.unpack_from(f"{order}{min(n, 1 << 20)}{code}", data, where))
    except struct.error:
        raise _truncated("TIFF", "its header runs past the end") from None
    if 256 not in tags or 257 not in tags:
        raise _Refused("expected a valid TIFF, got no image width or length")
    bits, samples = tags.get(258, [1])[0], tags.get(277, [1])[0]
    if bits > 8:
        raise _Refused(f"expected 8-bit pixels, got a {bits}-bit TIFF")
    for offsets, counts in ((273, 279), (324, 325)):
        ends = [o + c for o, c in zip(tags.get(offsets, []), tags.get(counts, []))]
        if ends and max(ends) > len(data):
            raise _truncated("TIFF", "fewer pixels than its header declares")
    palette = tags.get(262, [1])[0] == 3
    channels = 3 if palette or samples >= 3 else (1 if samples == 1 else None)
    return ImageHeader("TIFF", tags[257][0], tags[256][0], channels, "palette" * palette)


def _webp(data: bytes) -> ImageHeader:
    if len(data) < 30:
        raise _truncated("WebP", "no header")
    if struct.unpack_from("<I", data, 4)[0] + 8 > len(data):
        raise _truncated("WebP", "fewer bytes than its header declares")
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", data, 26))
    elif chunk == b"VP8L" and data[20] == 0x2F:
        bits = struct.unpack_from("<I", data, 21)[0]
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    else:
        raise _Refused("expected a valid WebP, got an unknown first chunk")
    return ImageHeader("WebP", height, width, 3)


def image_header(data: bytes) -> ImageHeader:
    """The header of an image file's bytes, which must be complete; ValueError if not."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data.startswith(b"BM"):
        return _bmp(data)
    if re.match(rb"P[1-6]\s", data):
        return _pnm(data)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    raise _Refused("expected PNG, JPEG, BMP, PNM, TIFF or WebP data, got none of them")


# -- images ---------------------------------------------------------------------------
def list_images(folder: PathLike) -> list[Path]:
    """Image files below ``folder`` (recursive), sorted by relative path; temporary files
    (``*.sifternet-tmp``) are never listed."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{shown(root)}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"{shown(root)}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _layout(shape: tuple[int, ...]) -> str:
    return f"a {'grey' if len(shape) == 2 else 'colour'} image of shape {shape}"


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV's own log lines off (its reason is in the error raised here)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def read_image(path: PathLike, shape: Optional[tuple[int, ...]] = None, *, like: str = "") -> np.ndarray:
    """One image file as uint8 (H, W) grey or (H, W, 3) RGB (alpha dropped).

    ``shape``: the shape it must have, checked against the file's header before any pixel
    is decoded (else at most :data:`MAX_IMAGE_PIXELS` pixels); ``like`` names where that
    shape comes from, for the error. Every error names the file.
    """
    data = read_file(path, MAX_IMAGE_FILE_BYTES)
    try:
        header = image_header(data)
    except _Refused as error:
        raise ValueError(f"{shown(path)}: {error}") from None
    if shape is not None:
        grey_plane = len(shape) == 3 and shape[2] == 1  # an (H, W, 1) model reads grey files
        wanted = shape[:2] if grey_plane else shape
        if (header.height, header.width) != shape[:2] or (header.shape or wanted) != wanted:
            raise ValueError(f"{shown(path)}: expected {_layout(wanted)}{like}, got {header.describe()}")
    elif header.height * header.width > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{shown(path)}: expected at most {MAX_IMAGE_PIXELS:,} pixels, got {header.describe()}"
        )
    with _quiet_opencv():
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            image = None
    if image is None:
        raise ValueError(
            f"{shown(path)}: expected a readable image, got {header.describe()} OpenCV cannot decode"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"{shown(path)}: expected 8-bit pixels, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ValueError(f"{shown(path)}: expected 1, 3 or 4 channels, got {image.shape[2]}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if shape is not None:
        if len(shape) == 3 and shape[2] == 1 and image.ndim == 2:
            image = image[:, :, None]
        if image.shape != shape:
            raise ValueError(
                f"{shown(path)}: expected {_layout(shape)}{like}, got {header.describe(image.shape)}"
            )
    return image


def read_images(paths: Sequence[PathLike], shape: Optional[tuple[int, ...]] = None) -> np.ndarray:
    """A batch of image files of one shape: ``shape``, or the first file's; each file's
    header is checked before it is decoded."""
    if not paths:
        raise ValueError("paths: expected at least one image file, got none")
    first = read_image(paths[0], shape)
    like = "" if shape is not None else f" like {shown(paths[0])}"
    batch = np.empty((len(paths), *first.shape), np.uint8)
    batch[0] = first
    for k, path in enumerate(paths[1:], 1):
        batch[k] = read_image(path, first.shape, like=like)
    return batch


def writable_suffix(path: PathLike) -> bool:
    """Whether OpenCV can encode an image in the format of ``path``'s suffix."""
    suffix = Path(path).suffix
    return bool(re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix)) and bool(cv2.haveImageWriter("x" + suffix))


def write_image(path: PathLike, image: np.ndarray) -> None:
    """Write a uint8 grey or RGB image atomically (format from the suffix)."""
    if not writable_suffix(path):
        raise ValueError(
            f"{shown(path)}: expected an image suffix OpenCV can write (.png, .jpg, .bmp, ...), "
            f"got {Path(path).suffix or 'none'!r}"
        )
    channels = image.shape[2] if image.ndim == 3 else 1
    swap = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}.get(channels)
    bgr = image if swap is None else cv2.cvtColor(image, swap)
    try:
        ok, encoded = cv2.imencode(Path(path).suffix, bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"{shown(path)}: expected an image OpenCV can encode, got shape {image.shape}")
    write_atomically(path, encoded.tobytes(), overwrite=True)


# -- atomic writes, temporaries, locks ---------------------------------------------------------
_RANDOM = re.compile(r"[a-z0-9_]{8}")  # tempfile's part of a temporary's name


def is_temporary(name: str) -> bool:
    """Whether a file name is one of this module's temporary files."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def remove_temporaries(targets: Iterable[PathLike]) -> int:
    """Remove the temporary files a killed run left beside ``targets`` (those named for
    them, no other); the number removed. Call it only while holding the output's lock:
    then every such temporary is stale."""
    prefixes: dict[str, set[str]] = {}
    for target in map(Path, targets):
        prefixes.setdefault(str(target.parent), set()).add(temp_prefix(target))
    removed = 0
    for folder, owned in prefixes.items():
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            owner, random = name[: -len(TEMP_SUFFIX) - 8], name[-len(TEMP_SUFFIX) - 8 : -len(TEMP_SUFFIX)]
            if is_temporary(name) and owner in owned and _RANDOM.fullmatch(random):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


class OutputInUseError(OSError):
    """Another process holds the lock of an output."""


def lock_path(output: PathLike, folder: bool) -> Path:
    """The lock file of an output: inside a folder output, beside an array output."""
    output = Path(output)
    return output / LOCK_NAME if folder else output.parent / f".{output.name}{LOCK_NAME}"


@contextmanager
def output_lock(output: PathLike, lock: PathLike) -> Iterator[None]:
    """Hold an exclusive lock (``flock``) on the file ``lock`` while writing ``output``: an
    :class:`OutputInUseError` naming the holder's pid if another process has it. The lock
    file holds the pid and is removed when the block ends (the kernel releases the lock of
    a killed process; its stale file is reused)."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise OutputInUseError(
                f"{shown(output)}: in use by another sifternet run (pid {holder or 'unknown'}); "
                "wait for it to end"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the previous holder may have removed the file before we locked it
            held = os.fstat(fd)
            current = os.stat(lock)
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)


# -- manifests ---------------------------------------------------------------------------
#: A finished output: (its image's index, its input's size, its input's mtime in ns).
Entry = tuple[int, int, int]
#: An output's suspicion score and its number of flipped pixels (``purify_scored``).
Score = tuple[float, int]


class Manifest(NamedTuple):
    """A folder run's record: its settings, its finished outputs by relative path (input
    index, size, mtime) and the scores of those it scored."""

    settings: dict[str, Any]
    finished: dict[str, Entry]
    scores: dict[str, Score]


def read_manifest(path: PathLike) -> Optional[Manifest]:
    """The :class:`Manifest` of a folder run, None if ``path`` does not exist; ValueError
    naming it if it is not a manifest written by :func:`write_manifest`."""
    try:
        data = read_file(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return None
    try:
        content = json.loads(data)
        if not isinstance(content, dict) or content.get("format") != MANIFEST_FORMAT:
            raise ValueError("no sifternet-purify-manifest format")
        if content.get("version") != MANIFEST_VERSION:
            raise ValueError(f"version {content.get('version')!r}")
        settings, finished = content.get("settings"), content.get("finished")
        listed_scores = content.get("scores", {})  # absent in manifests of earlier versions
        if not isinstance(settings, dict) or not isinstance(finished, dict):
            raise ValueError("no settings or finished outputs")
        if not isinstance(listed_scores, dict):
            raise ValueError("scores that are not a mapping")
        entries: dict[str, Entry] = {}
        for name, entry in finished.items():
            if not (isinstance(entry, list) and len(entry) == 3 and all(type(v) is int for v in entry)):
                raise ValueError(f"the entry {name!r}")
            entries[name] = (entry[0], entry[1], entry[2])
        scores: dict[str, Score] = {}
        for name, score in listed_scores.items():
            if not (
                name in entries
                and isinstance(score, list)
                and len(score) == 2
                and type(score[0]) is float
                and 0.0 <= score[0] <= 1.0
                and type(score[1]) is int
                and score[1] >= 0
            ):
                raise ValueError(f"the score of {name!r}")
            scores[name] = (score[0], score[1])
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{shown(path)}: expected a sifternet manifest, got {str(error)[:200]}") from None
    return Manifest(settings, entries, scores)


def write_manifest(
    path: PathLike,
    settings: dict[str, Any],
    finished: dict[str, Entry],
    scores: Optional[dict[str, Score]] = None,
) -> None:
    """Write a folder run's manifest atomically (sorted: equal runs give equal bytes)."""
    content = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "settings": settings,
        "finished": {name: list(entry) for name, entry in finished.items()},
        "scores": {name: list(score) for name, score in (scores or {}).items() if name in finished},
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    write_atomically(path, (text + "\n").encode("ascii"), overwrite=True)


def write_scores(path: PathLike, names: Sequence[str], scores: Sequence[Score], *, overwrite: bool) -> None:
    """Write a CSV of one row per image (``input,score,flipped_pixels``) atomically."""
    rows = ["input,score,flipped_pixels"]
    for name, (score, flipped) in zip(names, scores):
        quoted = '"' + name.replace('"', '""') + '"' if any(c in name for c in ',"\r\n') else name
        rows.append(f"{quoted},{float(score)!r},{int(flipped)}")
    write_atomically(path, ("\n".join(rows) + "\n").encode("utf-8", "surrogateescape"), overwrite=overwrite)


# -- arrays ------------------------------------------------------------------------------
def _npy_header(handle: IO[bytes], source: str, member: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran_order) of the ``.npy`` data at ``handle``'s position."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError) as error:
        raise ValueError(f"{source}: expected a .npy {member}header, got {str(error)[:200]}") from None
    if dtype.hasobject:
        raise ValueError(f"{source}: expected {member}of plain values, got pickled objects ({dtype})")
    return tuple(shape), dtype, fortran


def _check_array(
    source: str, key: str, shape: tuple[int, ...], dtype: np.dtype, image_shape: Optional[tuple[int, ...]]
) -> None:
    if image_shape is None:
        return
    if len(shape) != len(image_shape) + 1 or tuple(shape[1:]) != tuple(image_shape):
        dims = ", ".join(map(str, image_shape))
        raise ValueError(
            f"{source}: expected {key} of shape (B, {dims}), a batch of the model's {tuple(image_shape)} "
            f"images (one image: (1, {dims})), got {shape}"
        )
    if dtype != np.uint8:
        raise ValueError(f"{source}: expected {key} of dtype uint8, got {dtype}")


def _declared(source: str, shape: tuple[int, ...], dtype: np.dtype, available: int) -> int:
    """The bytes an array header declares, refused beyond the ``available`` bytes."""
    need = math.prod(shape) * dtype.itemsize
    if need > available:
        raise ValueError(
            f"{source}: expected at most {available:,} bytes of data, got a header declaring "
            f"shape {shape} of {dtype} ({need:,} bytes)"
        )
    return need


def _member(archive: zipfile.ZipFile, source: str, name: str) -> zipfile.ZipInfo:
    """The one member ``name`` of an archive, its declared size within what it can inflate to."""
    found = [info for info in archive.infolist() if info.filename == name]
    if len(found) > 1:
        raise ValueError(f"{source}: expected one member {name!r}, got {len(found)}")
    info = found[0]
    bound = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: _DEFLATE_RATIO}.get(info.compress_type)
    if bound is None:
        raise ValueError(f"{source}: expected stored or deflated members, got {name!r} compressed otherwise")
    if info.file_size > info.compress_size * bound + 1024:
        raise ValueError(f"{source}: expected a valid .npz, got {name!r} claiming {info.file_size:,} bytes")
    return info


def npz_arrays(path: PathLike) -> list[str]:
    """The names of the arrays of the ``.npz`` at ``path`` (its directory only)."""
    try:
        with open_regular(path) as handle, zipfile.ZipFile(handle) as archive:
            return [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise ValueError(f"{shown(path)}: expected a readable .npz, got {str(error)[:200]}") from None


def load_array(
    path: PathLike, key: str = "images", *, image_shape: Optional[tuple[int, ...]] = None
) -> np.ndarray:
    """Images from a ``.npy`` (memory-mapped) or an ``.npz`` (its ``key`` array, read whole).

    The header is checked before anything is allocated: its data must fit in the file, and
    with ``image_shape`` the array must be uint8 of shape (B,) + ``image_shape``. Only
    regular files are read. Every error names the file.
    """
    path = Path(path)
    source = shown(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{source}: expected a .npy or .npz file, got {path.suffix or 'no suffix'!r}")
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if suffix == ".npy":
            shape, dtype, fortran = _npy_header(handle, source, "")
            _check_array(source, key, shape, dtype, image_shape)
            offset = handle.tell()
            _declared(source, shape, dtype, size - offset)
            if math.prod(shape) == 0:
                return np.zeros(shape, dtype)
            return np.memmap(handle, dtype, "r", offset, shape, "F" if fortran else "C")
        try:
            with zipfile.ZipFile(handle) as archive:
                names = archive.namelist()
                if f"{key}.npy" not in names:
                    found = ", ".join(n[:-4] for n in names if n.endswith(".npy")) or "nothing"
                    raise ValueError(f"{source}: expected a {key!r} array, got {found}")
                info = _member(archive, source, f"{key}.npy")
                with archive.open(info) as member:
                    shape, dtype, fortran = _npy_header(member, source, f"{key!r} ")
                    _check_array(source, key, shape, dtype, image_shape)
                    need = _declared(source, shape, dtype, info.file_size - member.tell())
                    flat = np.empty(need, np.uint8)
                    done = 0
                    while done < need:  # the declared size, never more
                        block = member.read(min(need - done, 1 << 24))
                        if not block:
                            raise ValueError(f"{source}: expected {need:,} bytes of {key!r}, got {done:,}")
                        flat[done : done + len(block)] = np.frombuffer(block, np.uint8)
                        done += len(block)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
            raise ValueError(f"{source}: expected a readable .npz, got {str(error)[:200]}") from None
    return flat.view(dtype).reshape(shape, order="F" if fortran else "C")


def write_npz(
    path: PathLike,
    images: np.ndarray,
    extras: Optional[PathLike] = None,
    arrays: Optional[dict[str, np.ndarray]] = None,
) -> None:
    """A compressed ``.npz`` of ``images`` (as ``images``), the named ``arrays`` and every
    other member of the ``.npz`` ``extras``, copied block by block (object arrays refused;
    a member named as one of ``arrays`` is a ValueError)."""
    arrays = arrays or {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as out:
        for name, values in {"images": images, **arrays}.items():
            with out.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, values, allow_pickle=False)
        if extras is None:
            return
        source = shown(extras)
        try:
            with open_regular(extras) as handle, zipfile.ZipFile(handle) as archive:
                names = [info.filename for info in archive.infolist() if info.filename != "images.npy"]
                clash = [name[:-4] for name in names if name[:-4] in arrays]
                if clash:
                    raise ValueError(f"{source}: holds an array {clash[0]!r}, which the output writes itself")
                for name in names:
                    info = _member(archive, source, name)
                    if name.endswith(".npy"):
                        with archive.open(info) as head:
                            _npy_header(head, source, f"{name[:-4]!r} ")
                    with archive.open(info) as copy, out.open(name, "w", force_zip64=True) as member:
                        shutil.copyfileobj(copy, member, 1 << 20)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
            raise ValueError(f"{source}: expected a readable .npz, got {str(error)[:200]}") from None


# -- previews ----------------------------------------------------------------------------
def preview_grid(columns: Sequence[np.ndarray], *, scale: int = 4, gap: int = 2) -> np.ndarray:
    """An RGB grid: one row per image, one column per stage (each a batch of one shape)."""
    rows = []
    for images in zip(*columns):
        tiles = [np.dstack([im] * 3) if im.ndim == 2 else im for im in images]
        tiles = [cv2.resize(t, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for t in tiles]
        spacer = np.full((tiles[0].shape[0], gap, 3), 128, np.uint8)
        row = [part for t in tiles for part in (t, spacer)][:-1]
        rows.append(np.hstack(row))
        rows.append(np.full((gap, rows[-1].shape[1], 3), 128, np.uint8))
    return np.vstack(rows[:-1])
