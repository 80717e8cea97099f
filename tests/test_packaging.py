"""Packaging: the OpenCV requirement that setup.py picks for the environment it builds in."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
if not SETUP.exists():
    pytest.skip("setup.py is not here (tests run outside the source tree)", allow_module_level=True)

# Imported, not run: setup.py builds only as __main__.
_spec = importlib.util.spec_from_file_location("sifternet_setup", SETUP)
setup_py = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(setup_py)

OPENCV = [
    "opencv-python",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
    "opencv-python-headless",
]


def test_no_opencv_installed_requires_headless():
    assert setup_py.opencv_requirement({}) == "opencv-python-headless>=4.6"
    assert (
        setup_py.opencv_requirement({"numpy": "2.1.0", "opencv-foo": "1.0"}) == "opencv-python-headless>=4.6"
    )


@pytest.mark.parametrize("name", OPENCV)
def test_an_installed_opencv_is_required_instead_of_a_second_one(name):
    assert setup_py.opencv_requirement({"numpy": "2.1.0", name: "4.10.0.84"}) == f"{name}>=4.6"


def test_names_are_compared_in_canonical_form():
    assert setup_py.opencv_requirement({"OpenCV_Python": "4.10.0"}) == "opencv-python>=4.6"
    assert setup_py.opencv_requirement(["opencv.contrib_python"]) == "opencv-contrib-python>=4.6"


def test_with_several_installed_the_first_in_preference_order_is_kept():
    installed = {"opencv-python-headless": "4.10.0", "opencv-contrib-python": "4.9.0"}
    assert setup_py.opencv_requirement(installed) == "opencv-contrib-python>=4.6"
    assert (
        setup_py.opencv_requirement({"opencv-python-headless": "1", "opencv-python": "1"})
        == "opencv-python>=4.6"
    )


def test_install_requires_has_exactly_one_opencv():
    requires = setup_py.install_requires({"opencv-python": "4.10.0"})
    assert requires == ["numpy>=1.23", "opencv-python>=4.6", "tqdm>=4.60"]
    assert sum(r.startswith("opencv") for r in setup_py.install_requires({})) == 1


def test_this_environment_is_seen():
    """The real look-up finds this environment's packages, so a build here keeps its cv2."""
    from importlib.metadata import PackageNotFoundError, version

    installed = setup_py.installed_distributions()
    assert {"numpy", "pytest"} <= installed
    present = []
    for name in OPENCV:
        try:
            version(name)
        except PackageNotFoundError:
            continue
        present.append(name)
    expected = present[0] if present else "opencv-python-headless"
    assert setup_py.opencv_requirement(installed) == f"{expected}>=4.6"


def test_pyproject_leaves_the_dependencies_to_setup_py():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((SETUP.parent / "pyproject.toml").read_text())["project"]
    assert "dependencies" in project["dynamic"]
    assert "dependencies" not in project
