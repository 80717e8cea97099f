"""Coverage-guided fuzzing of the C++ binding layer (atheris): arrays of any dtype, shape
and content, and any options, into every _core entry point.

    python fuzz/fuzz_bindings.py fuzz/corpus/bindings -max_total_time=3600

Each call must return or raise TypeError / ValueError / MemoryError; a crash or any other
exception is a bug. Coverage guidance reaches this harness's Python (the choices of dtype,
shape, layout and options), not the C++ inside the extension.
"""

from __future__ import annotations

import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    from sifternet import NearestSeedRepair, _core

DTYPES = [
    np.int8,
    np.uint8,
    np.int32,
    np.int64,
    np.uint64,
    np.float32,
    np.float64,
    np.bool_,
    ">i1",
    ">i4",
    ">f8",
]
DOCUMENTED = (TypeError, ValueError, MemoryError)
#: A valid seed bank of nearest-seed repair for (4, 5, 3) images, one of its arrays
#: replaced by a fuzzed one in each input.
NEAREST = NearestSeedRepair().fit(np.random.default_rng(0).integers(0, 256, (6, 4, 5, 3), dtype=np.uint8))


@atheris.instrument_func
def array(fdp: atheris.FuzzedDataProvider) -> np.ndarray:
    dtype = np.dtype(DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)])
    shape = tuple(fdp.ConsumeIntInRange(0, 40) for _ in range(fdp.ConsumeIntInRange(0, 3)))
    count = int(np.prod(shape)) if shape else 1
    raw = fdp.ConsumeBytes(count * dtype.itemsize)
    raw += bytes(count * dtype.itemsize - len(raw))
    out = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if fdp.ConsumeBool() and out.ndim:
        out = out[::-1]
    return out


def four(values: np.ndarray) -> np.ndarray:
    """The array with trailing axes of 1 up to 4-D (the repair's (B, H, W, C))."""
    return values.reshape(values.shape + (1,) * (4 - values.ndim))


@atheris.instrument_func
def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    patterns, states, third = array(fdp), array(fdp), array(fdp)
    options = dict(
        steps=None if fdp.ConsumeBool() else fdp.ConsumeIntInRange(-2, 300),
        order=["random", "sweep", "x"][fdp.ConsumeIntInRange(0, 2)],
        seed=fdp.ConsumeIntInRange(-1, 2**64),
        channel=fdp.ConsumeIntInRange(-1, 3),
        channels=fdp.ConsumeIntInRange(-1, 3),
        thresholds=third if fdp.ConsumeBool() else None,
        margin=fdp.ConsumeRegularFloat(),
        agreement=fdp.ConsumeRegularFloat(),
        max_sweeps=fdp.ConsumeIntInRange(-1, 3),
        stats=fdp.ConsumeBool(),
        num_threads=fdp.ConsumeIntInRange(-1, 3),
    )
    indices = np.arange(len(states) if states.ndim else 0, dtype=np.uint64)
    calls = [
        lambda: _core.check_patterns(patterns),
        lambda: _core.hebbian_weights(patterns, options["num_threads"]),
        lambda: _core.storkey_weights(patterns, options["num_threads"]),
        lambda: _core.recall_overlap(patterns, states, indices, **options),
        lambda: _core.recall_dense(patterns, states, indices, **options),
        lambda: _core.recall_dense(third, states, indices, **options),
        lambda: _core.repair(
            four(patterns),
            four(states),
            four(third),
            output=["binary", "restore", "inpaint", "x"][fdp.ConsumeIntInRange(0, 3)],
            fill_size=fdp.ConsumeIntInRange(-1, 9),
            joint_channels=fdp.ConsumeBool(),
            num_threads=options["num_threads"],
        ),
    ]
    bank = list(NEAREST._bank)
    slot = fdp.ConsumeIntInRange(0, len(bank))
    if slot < len(bank):
        bank[slot] = third
    images = four(states) if fdp.ConsumeBool() else np.zeros((2, 4, 5, 3), np.uint8)
    calls += [
        lambda: _core.thumbnails(four(patterns), fdp.ConsumeIntInRange(-1, 9)),
        lambda: _core.nearest_repair(
            images,
            *bank,
            side=fdp.ConsumeIntInRange(-1, 9),
            neighbours=fdp.ConsumeIntInRange(-1, 9),
            agreement=fdp.ConsumeRegularFloat(),
            support=fdp.ConsumeBool(),
            max_area=fdp.ConsumeIntInRange(-1, 40),
            grow=fdp.ConsumeIntInRange(-1, 3),
            fill_size=fdp.ConsumeIntInRange(-1, 9),
            window=fdp.ConsumeIntInRange(-1, 9),
            scored=fdp.ConsumeBool(),
            num_threads=options["num_threads"],
        ),
    ]
    for call in calls:
        try:
            call()
        except DOCUMENTED:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
