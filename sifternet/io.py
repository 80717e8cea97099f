"""Images in and out: folders of image files, ``.npy`` / ``.npz`` arrays, preview grids.

Colour images are RGB in memory (as in the data sets the package reads); OpenCV's BGR order is
converted at the file boundary only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from sifternet.modelfile import PathLike, atomic_path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"})


def list_images(folder: PathLike) -> list[Path]:
    """Image files below ``folder`` (recursive), sorted by relative path."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def read_image(path: PathLike) -> np.ndarray:
    """One image file as uint8 (H, W) grey or (H, W, 3) RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.dtype != np.uint8:
        raise ValueError(f"{path}: expected 8-bit pixels, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def read_images(paths: Sequence[Path]) -> np.ndarray:
    """A batch of image files that must share one shape."""
    images = [read_image(p) for p in paths]
    for path, image in zip(paths, images):
        if image.shape != images[0].shape:
            raise ValueError(f"{path}: shape {image.shape} differs from {paths[0]}'s {images[0].shape}")
    return np.stack(images)


def write_image(path: PathLike, image: np.ndarray) -> None:
    """Write a uint8 grey or RGB image atomically (format from the suffix)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), bgr):
            raise ValueError(f"{path}: OpenCV cannot write this image format")


def load_array(path: PathLike, key: str = "images") -> np.ndarray:
    """Images from a ``.npy`` (memory-mapped) or an ``.npz`` (its ``key`` array)."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise ValueError(f"{path}: no {key!r} array (found: {', '.join(archive.files)})")
            return archive[key]
    raise ValueError(f"{path}: expected a .npy or .npz file")


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
