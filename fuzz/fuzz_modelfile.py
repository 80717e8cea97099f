"""Coverage-guided fuzzing of the model-file loader (atheris).

    python fuzz/fuzz_modelfile.py fuzz/corpus/modelfile -max_total_time=3600

Any input must load or raise ModelFileError; anything else is a bug and stops the run.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from sifternet import ModelFileError, SifterNet


def one_input(data: bytes) -> None:
    try:
        purifier = SifterNet.from_bytes(data)
    except ModelFileError:
        return
    assert purifier.is_fitted and purifier.networks


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
