"""Coverage-guided fuzzing of the model-file loader (atheris).

    python fuzz/fuzz_modelfile.py fuzz/corpus/modelfile -max_total_time=3600

Any input must load or raise ModelFileError naming its source; a model that loads must
save again to an equal model and purify. Anything else is a bug and stops the run.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import numpy as np

    from sifternet import ModelFileError, SifterNet

SOURCE = "fuzz input"


def one_input(data: bytes) -> None:
    try:
        purifier = SifterNet.from_bytes(data, source=SOURCE)
    except ModelFileError as error:
        assert str(error).startswith(f"{SOURCE}: "), error
        return
    assert purifier.is_fitted and purifier.networks
    again = SifterNet.from_bytes(purifier.to_bytes())
    assert again.config == purifier.config and again.image_shape == purifier.image_shape
    quick = purifier.with_options(steps=3, max_sweeps=1)  # a valid steps=10**15 would take ages
    assert quick.purify(np.zeros(purifier.image_shape, np.uint8)).shape == purifier.image_shape


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
