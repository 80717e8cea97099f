"""sifternet.io: image headers checked before decoding, atomic writes and their temporaries,
output locks, manifests and bounded array reads."""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sifternet import io as sio
from sifternet.io import (
    TEMP_SUFFIX,
    OutputInUseError,
    image_header,
    list_images,
    load_array,
    output_lock,
    read_image,
    read_images,
    read_manifest,
    remove_temporaries,
    shown,
    write_image,
    write_manifest,
    write_npz,
)
from sifternet.modelfile import FILE_MODE

RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, (9, 13), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)
FORMATS = [".png", ".jpg", ".bmp", ".pgm", ".ppm", ".tif", ".webp"]


def encoded(suffix: str, image: np.ndarray) -> bytes:
    if suffix == ".ppm" and image.ndim == 2:
        image = np.dstack([image] * 3)
    if suffix == ".pgm" and image.ndim == 3:
        image = image[:, :, 0]
    ok, data = cv2.imencode(suffix, image)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("image", [GREY, COLOUR], ids=["grey", "colour"])
def test_headers_declare_what_opencv_decodes(suffix, image):
    data = encoded(suffix, image)
    header = image_header(data)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (header.height, header.width) == pixels.shape[:2] == (9, 13)
    if header.channels is not None:
        assert header.channels == (1 if pixels.ndim == 2 else 3)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".pgm", ".tif"])
def test_read_image_round_trips_lossless_formats(tmp_path, suffix):
    image = GREY if suffix == ".pgm" else COLOUR
    path = tmp_path / f"x{suffix}"
    write_image(path, image)
    np.testing.assert_array_equal(read_image(path), image)
    np.testing.assert_array_equal(read_image(path, image.shape), image)


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_truncated_file_is_refused_naming_it(tmp_path, suffix):
    data = encoded(suffix, COLOUR)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) - max(4, len(data) // 5)])
    with pytest.raises(ValueError, match=rf"cut\{suffix}: expected a complete .*, got a truncated file"):
        read_image(path)


def test_a_jpeg_missing_only_its_end_marker_is_refused(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(encoded(".jpg", COLOUR)[:-2])
    with pytest.raises(ValueError, match="a.jpg: expected a complete JPEG.*no end-of-image marker"):
        read_image(path)


def test_a_png_chunk_failing_its_crc_is_refused(tmp_path):
    data = bytearray(encoded(".png", GREY))
    data[45] ^= 0xFF  # inside IDAT's data
    path = tmp_path / "crc.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"crc.png: expected a valid PNG, got a corrupt \w+ chunk \(CRC\)"):
        read_image(path)


def test_16_bit_pixels_are_refused_from_the_header(tmp_path):
    path = tmp_path / "deep.png"
    path.write_bytes(encoded(".png", GREY.astype(np.uint16) * 200))
    with pytest.raises(ValueError, match="deep.png: expected 8-bit pixels, got a 16-bit PNG"):
        read_image(path)


def test_other_data_under_an_image_suffix_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_bytes(b"hello, not an image")
    with pytest.raises(ValueError, match="notes.png: expected PNG, JPEG, BMP, PNM, TIFF or WebP data"):
        read_image(path)


def test_a_header_of_another_shape_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(encoded(".png", np.zeros((300, 200), np.uint8)))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(sio.cv2, "imdecode", no_decoding)
    with pytest.raises(
        ValueError, match=re.escape("big.png: expected a grey image of shape (9, 13), got a PNG")
    ):
        read_image(path, (9, 13))
    monkeypatch.setattr(sio, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match="big.png: expected at most 1,000 pixels"):
        read_image(path)


def test_read_images_names_the_file_of_another_shape(tmp_path):
    write_image(tmp_path / "a.png", GREY)
    write_image(tmp_path / "b.png", COLOUR)
    with pytest.raises(ValueError, match=r"b.png: expected a grey image of shape \(9, 13\) like .*a.png"):
        read_images([tmp_path / "a.png", tmp_path / "b.png"])


def test_read_image_reads_special_names_and_refuses_special_files(tmp_path):
    name = tmp_path / os.fsdecode(b"\xff\xfe.png")
    write_image(name, GREY)
    assert os.listdir(os.fsencode(tmp_path)) == [b"\xff\xfe.png"]
    np.testing.assert_array_equal(read_image(name), GREY)
    assert shown(name).endswith("\\xff\\xfe.png")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ValueError, match="pipe.png: expected a regular file, got a named pipe"):
        read_image(tmp_path / "pipe.png")


def test_list_images_skips_temporaries_and_special_files(tmp_path):
    write_image(tmp_path / "sub" / "a.png", GREY)
    (tmp_path / "sub" / f".a.png.abcd1234{TEMP_SUFFIX}").write_bytes(b"half")
    os.mkfifo(tmp_path / "pipe.png")
    assert list_images(tmp_path) == [tmp_path / "sub" / "a.png"]


def test_write_image_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    write_image(path, GREY)
    assert os.listdir(tmp_path) == ["a.png"] and path.stat().st_mode & 0o777 == FILE_MODE
    seen = []

    def failing(source, target):
        seen.append(Path(source).name)
        raise OSError("disk gone")

    monkeypatch.setattr(sio.os, "replace", failing)
    with pytest.raises(OSError, match="disk gone"):
        write_image(path, COLOUR)
    assert re.fullmatch(rf"\.a\.png\.[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}", seen[0])
    assert os.listdir(tmp_path) == ["a.png"]
    np.testing.assert_array_equal(read_image(path), GREY)


def test_write_image_refuses_a_suffix_opencv_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="grid.xyz: expected an image suffix OpenCV can write"):
        write_image(tmp_path / "grid.xyz", GREY)
    assert os.listdir(tmp_path) == []


def test_remove_temporaries_removes_only_those_of_its_targets(tmp_path):
    (tmp_path / "d").mkdir()
    ours = [tmp_path / "d" / f".x.png.abcd1234{TEMP_SUFFIX}", tmp_path / f".out.npy.zz_z9999{TEMP_SUFFIX}"]
    kept = [
        tmp_path / "d" / "x.png",
        tmp_path / "d" / f".y.png.abcd1234{TEMP_SUFFIX}",  # another output's
        tmp_path / f".out.npz.abcd1234{TEMP_SUFFIX}",
        tmp_path / f".out.npy.x.npy.abcd1234{TEMP_SUFFIX}",
        tmp_path / "out.npy",
    ]
    for path in ours + kept:
        path.write_bytes(b"")
    assert remove_temporaries([tmp_path / "out.npy", tmp_path / "d" / "x.png", tmp_path / "e" / "z.png"]) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["d", *(p.name for p in kept)])


def test_a_second_output_lock_is_refused_naming_the_holder(tmp_path):
    lock = tmp_path / ".lock"
    with output_lock(tmp_path / "out", lock):
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(
            OutputInUseError, match=f"out: in use by another sifternet run \\(pid {os.getpid()}\\)"
        ):
            with output_lock(tmp_path / "out", lock):
                pass
    assert not lock.exists()
    lock.write_text("12345\n")  # the file a killed holder leaves: its lock went with it
    with output_lock(tmp_path / "out", lock):
        assert lock.read_text() == f"{os.getpid()}\n"


def test_manifests_round_trip_and_refuse_other_content(tmp_path):
    path = tmp_path / "m.json"
    assert read_manifest(path) is None
    name = os.fsdecode(b"sub/caf\xe9.png")
    write_manifest(path, {"seed": 1}, {name: (3, 100, 10**18)})
    assert read_manifest(path) == ({"seed": 1}, {name: (3, 100, 10**18)}, {})
    write_manifest(path, {"seed": 1}, {name: (3, 100, 10**18)}, {name: (1 / 9, 4), "gone.png": (1.0, 9)})
    assert read_manifest(path) == ({"seed": 1}, {name: (3, 100, 10**18)}, {name: (1 / 9, 4)})
    head = b'{"format": "sifternet-purify-manifest", "version": 1, "settings": {}, '
    for junk in (
        b"[" * 100_000,
        b"{}",
        b'{"format": "sifternet-purify-manifest", "version": 1}',
        head + b'"finished": {"a.png": [0, 1, 2]}, "scores": {"a.png": [1.5, 3]}}',  # score above 1
        head + b'"finished": {}, "scores": {"a.png": [0.5, 3]}}',  # a score of no finished output
        head + b'"finished": {}, "scores": []}',
    ):
        path.write_bytes(junk)
        with pytest.raises(ValueError, match="m.json: expected a sifternet manifest"):
            read_manifest(path)


def npy(fields: dict, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, fields)
    return buffer.getvalue() + data


def test_load_array_checks_the_shape_against_the_images(tmp_path):
    images = RNG.integers(0, 256, (4, 9, 13), dtype=np.uint8)
    np.save(tmp_path / "a.npy", images)
    np.savez(tmp_path / "a.npz", images=images)
    for name in ("a.npy", "a.npz"):
        np.testing.assert_array_equal(load_array(tmp_path / name, image_shape=(9, 13)), images)
        with pytest.raises(ValueError, match=re.escape(f"{name}: expected images of shape (B, 9, 14)")):
            load_array(tmp_path / name, image_shape=(9, 14))
    np.save(tmp_path / "f.npy", images.astype(np.float32))
    with pytest.raises(ValueError, match="f.npy: expected images of dtype uint8, got float32"):
        load_array(tmp_path / "f.npy", image_shape=(9, 13))


@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_load_array_refuses_a_header_declaring_more_than_the_file_holds(tmp_path, kind):
    data = npy({"descr": "|u1", "fortran_order": False, "shape": (10**9, 9, 13)}, bytes(117))
    path = tmp_path / f"big.{kind}"
    if kind == "npy":
        path.write_bytes(data)
    else:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("images.npy", data)
    with pytest.raises(ValueError, match=re.escape("declaring shape (1000000000, 9, 13) of uint8")):
        load_array(path)


def test_load_array_refuses_a_member_claiming_more_than_it_can_inflate_to(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(
            "images.npy", npy({"descr": "|u1", "fortran_order": False, "shape": (1, 9, 13)}, bytes(117))
        )
    data = bytearray(path.read_bytes())
    directory = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, directory + 24, 1 << 31)  # its uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bomb.npz: expected a valid .npz, got 'images.npy' claiming"):
        load_array(path)


def test_load_array_refuses_objects_pipes_and_other_suffixes(tmp_path):
    (tmp_path / "o.npy").write_bytes(npy({"descr": "|O", "fortran_order": False, "shape": (1,)}, bytes(8)))
    with pytest.raises(ValueError, match="o.npy: expected of plain values, got pickled objects"):
        load_array(tmp_path / "o.npy")
    os.mkfifo(tmp_path / "p.npy")
    with pytest.raises(ValueError, match="p.npy: expected a regular file, got a named pipe"):
        load_array(tmp_path / "p.npy")
    with pytest.raises(ValueError, match="x.txt: expected a .npy or .npz file"):
        load_array(tmp_path / "x.txt")


def test_write_npz_copies_every_other_member(tmp_path):
    images = RNG.integers(0, 256, (2, 3, 4), dtype=np.uint8)
    with zipfile.ZipFile(tmp_path / "in.npz", "w") as archive:
        for name, value in {"images": images, "labels": np.arange(2), "file": np.ones(3)}.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, value)
        archive.writestr("notes.txt", b"kept as it is")
    write_npz(tmp_path / "out.npz", images[::-1], tmp_path / "in.npz")
    with np.load(tmp_path / "out.npz") as result:
        assert result.files == ["images", "labels", "file", "notes.txt"]
        np.testing.assert_array_equal(result["images"], images[::-1])
        np.testing.assert_array_equal(result["file"], np.ones(3))
    with zipfile.ZipFile(tmp_path / "out.npz") as archive:
        assert archive.read("notes.txt") == b"kept as it is"
        assert zlib.crc32(archive.read("labels.npy")) == archive.getinfo("labels.npy").CRC
