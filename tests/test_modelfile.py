"""Model files: round trips, and hostile files refused with ModelFileError naming the file,
before they cost more memory or time than the model they describe."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import threading
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sifternet import ModelFileError, SifterNet, modelfile
from sifternet.modelfile import FORMAT_VERSION, METADATA_KEY, pack

CORPUS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus" / "modelfile"
SOURCE = "hostile.npz"


def images(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def model() -> bytes:
    """A small fitted grey model (6x6, two seeds, with labels)."""
    rng = np.random.default_rng(5)
    return SifterNet(steps=10).fit(images(rng, 2, 6, 6), labels=[3, 4]).to_bytes()


def parts(data: bytes) -> tuple[dict, dict]:
    """(metadata, arrays) of model bytes, read without any checks."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    return json.loads(arrays.pop(METADATA_KEY).tobytes()), arrays


def raw(metadata, arrays: dict) -> bytes:
    """An .npz of ``arrays`` and ``metadata`` (JSON-encoded unless bytes), not re-signed."""
    text = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
    out = io.BytesIO()
    np.savez_compressed(out, **arrays, **{METADATA_KEY: np.frombuffer(text, np.uint8)})
    return out.getvalue()


def edit(data: bytes, change) -> bytes:
    """The model with metadata and arrays passed through ``change``, checksum untouched."""
    metadata, arrays = parts(data)
    change(metadata, arrays)
    return raw(metadata, arrays)


def forge(data: bytes, change) -> bytes:
    """The model changed by ``change`` and signed again, as a careful forger would."""
    metadata, arrays = parts(data)
    change(metadata, arrays)
    fields = {
        k: v
        for k, v in metadata.items()
        if k not in ("format", "format_version", "sifternet_version", "sha256")
    }
    return pack(fields, arrays)


def refused(data: bytes, match: str | None = None) -> ModelFileError:
    """The ModelFileError loading ``data`` raises; its message names the source."""
    with pytest.raises(ModelFileError, match=match) as caught:
        SifterNet.from_bytes(data, source=SOURCE)
    assert str(caught.value).startswith(f"{SOURCE}: "), caught.value
    return caught.value


def npy(header: dict, body: bytes = b"") -> bytes:
    """A .npy member: ``header`` (descr, fortran_order, shape) and raw ``body``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + body


def archive(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name, bytes) members, duplicates included."""
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", compression) as zipped:
        warnings.simplefilter("ignore")  # zipfile warns of duplicate names
        for name, body in members:
            zipped.writestr(name, body)
    return out.getvalue()


def members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        return [(info.filename, zipped.read(info)) for info in zipped.infolist()]


def bomb(data: bytes, name: str, header: dict, zero_bytes: int) -> bytes:
    """The model with member ``name`` (.npy ``header`` then ``zero_bytes`` zeros, deflated)
    added or replacing its namesake: a small file that inflates to ``zero_bytes``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zipped:
        for member, body in members(data):
            if member != name:
                zipped.writestr(member, body)
        with zipped.open(name, "w", force_zip64=True) as stream:
            stream.write(npy(header))
            block = bytes(1 << 20)
            for start in range(0, zero_bytes, len(block)):
                stream.write(block[: min(len(block), zero_bytes - start)])
    return out.getvalue()


def peak_bytes(call) -> int:
    """The peak of traced allocations while ``call`` runs (numpy's included)."""
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["hebbian", "storkey", "projection"])
def test_save_load_and_pickle_round_trip(tmp_path, rule):
    rng = np.random.default_rng(4)
    purifier = SifterNet(rule=rule, steps=100, block_size=3).fit(images(rng, 3, 8, 8, 3), labels=[0, 1, 2])
    batch = images(rng, 5, 8, 8, 3)
    want = purifier.purify(batch)
    path = tmp_path / "model.npz"
    purifier.save(path)
    for copy in (SifterNet.load(path), pickle.loads(pickle.dumps(purifier))):
        assert copy.config == purifier.config and copy.image_shape == (8, 8, 3)
        np.testing.assert_array_equal(copy.seed_labels, [0, 1, 2])
        np.testing.assert_array_equal(copy.purify(batch), want)
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        purifier.save(path)
    purifier.save(path, overwrite=True)
    unfitted = pickle.loads(pickle.dumps(SifterNet(steps=7)))
    assert not unfitted.is_fitted and unfitted.config.steps == 7


def test_models_without_labels_and_fortran_arrays_load(model):
    def fortran(meta, arrays):
        del arrays["seed_labels"]
        arrays["patterns_0"] = np.asfortranarray(arrays["patterns_0"])

    purifier = SifterNet.from_bytes(forge(model, fortran))
    assert purifier.seed_labels is None
    np.testing.assert_array_equal(
        purifier.networks[0].patterns, SifterNet.from_bytes(model).networks[0].patterns
    )


def test_numpy_scalar_options_save_and_pickle():
    """Regression: options given as numpy scalars made to_bytes (and pickling) raise TypeError."""
    purifier = SifterNet(block_size=np.int64(5), offset=np.float64(1.5), steps=np.int32(7))
    purifier.fit(np.zeros((2, 6, 6), np.uint8))
    for copy in (SifterNet.from_bytes(purifier.to_bytes()), pickle.loads(pickle.dumps(purifier))):
        assert copy.config == purifier.config and type(copy.config.block_size) is int


def test_format_version_1_files_still_load():
    """Files of the previous release (format 1: checksum over the arrays only) load, and are
    validated like any other."""
    grey = SifterNet.load(CORPUS / "grey.npz")
    assert grey.image_shape == (4, 4) and grey.config.steps == 10
    storkey = SifterNet.load(CORPUS / "storkey.npz")
    assert storkey.config.rule == "storkey" and storkey.seed_labels.shape == (2,)
    v1 = (CORPUS / "grey.npz").read_bytes()
    assert parts(v1)[0]["format_version"] == 1

    def sign_v1(meta, arrays):
        sha = hashlib.sha256()
        for name in sorted(arrays):
            array = np.ascontiguousarray(arrays[name])
            sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            sha.update(array.tobytes())
        meta["sha256"] = sha.hexdigest()

    refused(edit(v1, lambda m, a: (m["config"].update(block_size=10**9), sign_v1(m, a))), "block_size")
    refused(
        edit(v1, lambda m, a: (a.update(seed_labels=np.zeros((2, 1), np.int64)), sign_v1(m, a))),
        "seed_labels",
    )
    refused(edit(v1, lambda m, a: a.update(patterns_0=-a["patterns_0"])), "checksum mismatch")


# -- item 1: metadata covered by the checksum, validated by the constructor's checks -----


def test_metadata_edits_break_the_checksum(model):
    """Regression: the checksum covered the arrays only, so an edited steps=0 loaded and
    purify silently returned the binarised images."""
    refused(edit(model, lambda m, a: m["config"].update(steps=0)), "checksum mismatch")
    refused(edit(model, lambda m, a: m.update(image_shape=[36, 1])), "checksum mismatch")
    refused(edit(model, lambda m, a: m.update(sifternet_version="9.9")), "checksum mismatch")
    assert parts(model)[0]["format_version"] == FORMAT_VERSION == 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("block_size", 10**9, "block_size: expected an int >= 1 and <= 2901"),
        ("steps", 2**63, ""),
        ("max_sweeps", 2**63, ""),
        ("offset", 10**400, ""),
        ("steps", -4, "steps: expected an int >= 0"),
        ("agreement", 0.5, "agreement"),  # with rule storkey below
    ],
)
def test_config_gets_the_checks_purify_makes(model, field, value, message):
    """Regression: options the constructor takes but purify refuses (block_size=10**9, steps
    beyond int64) loaded and failed later without the file's name; offset=10**400 raised
    OverflowError."""

    def change(meta, arrays):
        meta["config"][field] = value
        if field == "agreement":
            meta["config"]["rule"] = "storkey"
            arrays["weights_0"] = np.zeros((36, 36))

    refused(forge(model, change), f"invalid model content: {message}")


@pytest.mark.parametrize(
    "labels",
    [np.array([[3], [4]]), np.array([3, 4, 5]), np.array([3.0, 4.0]), np.array([], np.int64), np.array(3)],
    ids=["2-D", "too-many", "float", "empty", "scalar"],
)
def test_seed_labels_are_one_integer_per_seed(model, labels):
    """Regression: 2-D, mis-sized and float seed_labels loaded."""
    refused(
        forge(model, lambda m, a: a.update(seed_labels=labels)), r"seed_labels: expected int.* shape \(2,\)"
    )


@pytest.mark.parametrize(
    "shape",
    [[True, 36], [6, 6, True], [6.0, 6], ["6", 6], [6, -6], [6], [1, 6, 6, 1], "66", {"h": 6}, None, [0, 6]],
)
def test_image_shape_is_two_or_three_positive_ints(model, shape):
    """Regression (the bools): image_shape [True, 36] loaded as (1, 36)."""
    refused(forge(model, lambda m, a: m.update(image_shape=shape)), "image_shape: expected")


def test_metadata_fields_are_exactly_the_models(model):
    """Regression: a config missing a field loaded with the default, unknown fields were ignored."""

    def drop_steps(meta, arrays):
        del meta["config"]["steps"]

    refused(forge(model, drop_steps), "config: expected every option.*missing steps")
    refused(forge(model, lambda m, a: m.update(note="x")), "metadata: expected the fields.*got also note")
    refused(forge(model, lambda m, a: m["config"].update(colour=True)), "colour")
    refused(forge(model, lambda m, a: m["config"].update(num_threads=2)), "num_threads")
    for config in ([1, 2], "steps", None, 5):
        refused(forge(model, lambda m, a, config=config: m.update(config=config)), "config: expected a JSON")
    refused(forge(model, lambda m, a: m.pop("config")), "config")
    refused(forge(model, lambda m, a: m.pop("image_shape")), "image_shape")


def test_arrays_are_exactly_the_models(model):
    refused(forge(model, lambda m, a: a.update(extra=np.zeros(3, np.int8))), "extra: unexpected array")
    refused(forge(model, lambda m, a: a.pop("patterns_0")), "patterns_0: missing")
    refused(
        forge(model, lambda m, a: a.update(patterns_0=a["patterns_0"][:, :35])),
        r"patterns_0: expected .*\(2, 36\)",
    )
    refused(
        forge(model, lambda m, a: a.update(patterns_0=a["patterns_0"].astype(np.int32))),
        "patterns_0: expected int8",
    )
    refused(forge(model, lambda m, a: a.update(weights_0=np.zeros((36, 36)))), "weights_0: unexpected array")
    refused(forge(model, lambda m, a: a.update(patterns_0=np.zeros((0, 36), np.int8))), "patterns_0")
    refused(
        forge(model, lambda m, a: a.update(patterns_0=np.zeros((2, 36), np.int8))),
        r"patterns_0: expected values -1 or \+1",
    )
    refused(forge(model, lambda m, a: m.update(image_shape=[6, 6, 2])), "patterns_1: missing")


# -- item 2: bounded memory -------------------------------------------------------------

BOMB = 48 << 20  # inflated bytes of the bombs below (each file is ~50 KB)
SMALL = 12 << 20  # the most a refusal of them may allocate


def _header(shape: tuple, descr: str = "|i1") -> dict:
    return {"descr": descr, "fortran_order": False, "shape": shape}


@pytest.mark.parametrize(
    ("name", "header", "zero_bytes", "message"),
    [
        ("junk.npy", _header((BOMB,)), BOMB, "junk: unexpected array"),
        ("patterns_0.npy", _header((BOMB // 36, 36)), BOMB // 36 * 36, "patterns_0: expected values -1 or"),
        ("patterns_0.npy", _header((2, 36)), BOMB, "patterns_0: declares"),
        ("seed_labels.npy", _header((BOMB // 8,), "<i8"), BOMB, r"seed_labels: expected int.* shape \(2,\)"),
        (f"{METADATA_KEY}.npy", _header((BOMB,), "|u1"), BOMB, "metadata"),
    ],
    ids=["extra-member", "patterns-rows", "patterns-trailing", "labels", "metadata"],
)
def test_bombs_are_refused_before_inflating(model, name, header, zero_bytes, message):
    """Regression: a small file inflated every member in full (twice over) before any check."""
    if name == "patterns_0.npy":  # no labels to tell the number of seeds
        model = forge(model, lambda m, a: a.pop("seed_labels"))
    data = bomb(model, name, header, zero_bytes)
    assert len(data) < BOMB // 500
    caught = []

    def load() -> None:
        try:
            SifterNet.from_bytes(data, source=SOURCE)
        except ModelFileError as error:
            caught.append(str(error))

    peak = peak_bytes(load)
    assert caught and caught[0].startswith(f"{SOURCE}: ") and re.search(message, caught[0]), caught
    assert peak < SMALL, f"{peak:,} bytes allocated"


def test_budget_follows_the_metadata(model, monkeypatch):
    """Refused from the declared sizes alone: a member's size against its .npy header, the
    total against MAX_MODEL_BYTES."""
    monkeypatch.setattr(modelfile, "MAX_MODEL_BYTES", 100)
    refused(model, "bytes uncompressed, more than the 100")
    monkeypatch.undo()
    lie = bytearray(model)
    at = lie.rfind(b"PK\x01\x02")  # the last central directory entry: declare 1 TB uncompressed
    struct.pack_into("<I", lie, at + 24, 0xFFFFFFFF)
    refused(bytes(lie))


def test_load_reads_no_more_than_a_model_file_can_hold(tmp_path, monkeypatch):
    """Regression: load read the whole file, whatever its size, before any check."""
    monkeypatch.setattr(modelfile, "MAX_FILE_BYTES", 1 << 20, raising=False)
    big = tmp_path / "big.npz"
    big.write_bytes(b"PK\x03\x04" + bytes(2 << 20))
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(big))}: .*larger than the 1,048,576 bytes"):
        SifterNet.load(big)
    fifo = tmp_path / "stream.npz"
    os.mkfifo(fifo)

    def endless() -> None:
        try:
            with open(fifo, "wb") as out:
                out.write(b"PK\x03\x04")
                for _ in range(64):
                    out.write(bytes(1 << 20))
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=endless, daemon=True)
    writer.start()
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(fifo))}: .*larger than the 1,048,576 bytes"):
        SifterNet.load(fifo)
    writer.join(10)


def test_load_of_dev_zero_stops_at_once():
    """Regression: loading /dev/zero read without bound (until memory ran out)."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from sifternet import ModelFileError, SifterNet\n"
        "try:\n    SifterNet.load('/dev/zero')\n"
        "except ModelFileError as error:\n    print(error)\n"
    )
    done = subprocess.run(  # outside the source tree: the installed package runs
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent
    )
    assert done.returncode == 0 and done.stdout.startswith("/dev/zero: not a readable .npz model file"), done


# -- item 3: JSON that breaks the parser --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "metadata"),
        (b'{"format": "sifternet-model", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "metadata"),
        (b'{"format": "sifternet-model", "x": ' + b"7" * 500_000 + b"}", "metadata"),
        (b'{"format": "sifternet-model", "format_version": 1' + b"0" * 5000 + b"}", "metadata"),
    ],
    ids=["nested", "nested-field", "long-int", "long-version"],
)
def test_json_the_parser_cannot_take_is_refused(model, text, message):
    """Regression: RecursionError and int-digit-limit ValueError escaped."""
    refused(raw(text, parts(model)[1]), message)


def test_json_that_parses_ambiguously_is_refused(model):
    """Regression: NaN, duplicate keys and a bool format_version loaded."""
    metadata, arrays = parts(model)
    text = json.dumps(metadata)
    refused(raw(text[:-1].encode() + b', "note": NaN}', arrays), "NaN")
    refused(raw(text[:-1].encode() + b', "note": 1e400}', arrays), "1e400")
    refused(raw(b'{"config": {}, ' + text[1:].encode(), arrays), "expected unique keys, got 'config' twice")
    refused(raw({**metadata, "format_version": True}, arrays), "format_version: expected")
    refused(raw({**metadata, "sha256": 5}, arrays), "sha256: expected")
    refused(raw({**metadata, "sifternet_version": ["x"] * 1000}, arrays), "sifternet_version: expected")
    deep: list = [1]
    for _ in range(40):
        deep = [deep]
    refused(raw({**metadata, "deep": deep}, arrays), "nested")
    huge_config = {**metadata["config"], "binarize": "x" * 500_000}
    error = refused(forge(model, lambda m, a: m.update(config=huge_config)), "binarize")
    assert len(str(error)) < 2000


# -- item 4: hostile archives ---------------------------------------------------------------


def test_hostile_archives_are_refused(model):
    good = members(model)
    meta = dict(good)[f"{METADATA_KEY}.npy"]
    patterns = dict(good)["patterns_0.npy"]
    cases = {
        "empty": b"",
        "not-zip": b"not a zip at all",
        "truncated": model[: len(model) // 2],
        "empty-zip": archive([]),
        "no-metadata": archive([("patterns_0.npy", patterns)]),
        "directory": archive(good + [("dir/", b"")]),
        "nested-name": archive(good + [("dir/patterns_1.npy", patterns)]),
        "duplicate": archive(good + [("patterns_0.npy", patterns)]),
        "duplicate-metadata": archive([(f"{METADATA_KEY}.npy", meta)] + good),
        "stored-and-bzip2": archive(good, zipfile.ZIP_BZIP2),
        "not-npy": archive(good[:-1] + [(good[-1][0], b"hello")]),
        "pickle": archive(good + [("obj.npy", npy({"descr": "|O", "fortran_order": False, "shape": (1,)}))]),
        "negative-shape": archive(
            good + [("neg.npy", npy({"descr": "|i1", "fortran_order": False, "shape": (-5, 2)}))]
        ),
        "vast-shape": archive(
            good + [("vast.npy", npy({"descr": "<f8", "fortran_order": False, "shape": (2**62, 2**62)}))]
        ),
        "void-dtype": archive(
            good + [("void.npy", npy({"descr": "|V1000000000", "fortran_order": False, "shape": (1,)}))]
        ),
        "subarray-dtype": archive(
            good
            + [("sub.npy", npy({"descr": [("a", "<f8", (10**6,))], "fortran_order": False, "shape": (1,)}))]
        ),
        "metadata-not-bytes": archive(
            [(f"{METADATA_KEY}.npy", npy({"descr": "<f8", "fortran_order": False, "shape": (1,)}, bytes(8)))]
            + good[1:]
        ),
        "metadata-not-utf8": raw(b"\xff\xfe", parts(model)[1]),
        "metadata-list": raw(b"[1, 2]", parts(model)[1]),
        "metadata-string": raw(b'"sifternet-model"', parts(model)[1]),
        "foreign": raw({"format": "other"}, parts(model)[1]),
        "newer": raw({**parts(model)[0], "format_version": FORMAT_VERSION + 1}, parts(model)[1]),
        "version-0": raw({**parts(model)[0], "format_version": 0}, parts(model)[1]),
        "many-members": archive([(f"m{i}.npy", b"") for i in range(5000)]),
    }
    wrong = {}
    for name, data in cases.items():
        try:
            SifterNet.from_bytes(data, source=SOURCE)
            wrong[name] = "loaded"
        except ModelFileError as error:
            if not str(error).startswith(f"{SOURCE}: "):
                wrong[name] = str(error)
        except Exception as error:  # anything else is the bug looked for
            wrong[name] = f"{type(error).__name__}: {error}"[:300]
    assert not wrong, wrong


def test_unreadable_files_say_so(model, tmp_path):
    refused(b"not a zip at all", "not a readable .npz model file")
    refused(model[:100], "not a readable .npz model file")
    refused(edit(model, lambda m, a: m.update(format_version=FORMAT_VERSION + 1)), "upgrade sifternet")
    refused(edit(model, lambda m, a: m.update(format="something-else")), "not a sifternet model")
    refused(edit(model, lambda m, a: a.update(patterns_0=-a["patterns_0"])), "checksum mismatch")
    path = tmp_path / "empty.zip"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(ModelFileError, match=f"^{re.escape(str(path))}: "):
        SifterNet.load(path)


def test_regression_corpus_is_refused():
    """Inputs that once broke the loader (fuzz/corpus/modelfile/regression-*), by path."""
    found = sorted(CORPUS.glob("regression-*"))
    assert len(found) >= 8
    for path in found:
        with pytest.raises(ModelFileError, match=f"^{re.escape(str(path))}: "):
            SifterNet.load(path)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_mutated_model_files_load_or_are_refused(model, data):
    """Bytes flipped, cut or spliced anywhere: a model or a ModelFileError, nothing else."""
    blob = bytearray(model)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip":
            blob[at] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del blob[at : at + data.draw(st.integers(1, 64))]
        else:
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        if not blob:
            break
    try:
        SifterNet.from_bytes(bytes(blob), source=SOURCE)
    except ModelFileError as error:
        assert str(error).startswith(f"{SOURCE}: ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_forged_metadata_loads_or_is_refused(model, data):
    """Any JSON in any metadata field, signed again: a model or a ModelFileError."""
    metadata, arrays = parts(model)
    fields = {"config": dict(metadata["config"]), "image_shape": metadata["image_shape"]}
    where = data.draw(st.sampled_from(["image_shape", *fields["config"]]))
    value = data.draw(json_values)
    if where == "image_shape":
        fields["image_shape"] = value
    else:
        fields["config"][where] = value
    try:
        forged = pack(fields, arrays)
    except ValueError:  # NaN / inf: pack writes strict JSON
        forged = raw({**metadata, **fields}, arrays)
    try:
        purifier = SifterNet.from_bytes(forged, source=SOURCE)
    except ModelFileError as error:
        assert str(error).startswith(f"{SOURCE}: ")
    else:  # what loads runs (at most a few steps: a valid steps=10**15 would take ages)
        purifier.with_options(steps=3, max_sweeps=1).purify(np.zeros((2, 6, 6), np.uint8))
