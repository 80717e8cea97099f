"""Build of sifternet's C++ kernel (sifternet._core), and its dependencies.

Environment switches:
  SIFTERNET_NATIVE=1     compile for this machine's CPU (-march=native); such a build
                         may crash on older CPUs, so never ship it as a wheel.
  SIFTERNET_NO_OPENMP=1  build without OpenMP (serial; results are identical).
  SIFTERNET_SANITIZE=address,undefined
                         build with AddressSanitizer and UBSan (-O1 -g, any report is
                         fatal, no CPU-dispatch clones); run Python with the ASan runtime
                         preloaded, see docs/development.md, Sanitizers.

Dependencies are computed here (pyproject.toml lists them as dynamic), for OpenCV's sake:
see opencv_requirement. Importing this file only defines functions; setuptools runs it as
__main__, which builds.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d", n);
    return n > 0 ? 0 : 1;
}
"""

#: OpenCV's distributions on PyPI. All four install the same cv2 package, so an environment
#: must hold only one: with two, removing or upgrading either breaks `import cv2`. In order
#: of preference when several are installed already.
OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
    "opencv-python-headless",
)
OPENCV_DEFAULT = "opencv-python-headless"
OPENCV_MINIMUM = "4.6"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def openmp_flags(compiler) -> list[str]:
    """Compile, link and run a tiny OpenMP program; return the flags that made it work."""
    if _flag("SIFTERNET_NO_OPENMP"):
        return []
    flag = "-fopenmp"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(OPENMP_PROBE)
        try:
            objects = compiler.compile([str(src)], output_dir=tmp, extra_postargs=[flag])
            exe = str(Path(tmp) / "probe")
            compiler.link_executable(objects, exe, extra_postargs=[flag])
            subprocess.run([exe], check=True, capture_output=True, timeout=60)
        except Exception as error:  # any failure means: no usable OpenMP here
            warnings.warn(
                f"OpenMP is not usable with this compiler ({error}); building sifternet "
                "serially. Results are identical, only slower.",
                stacklevel=1,
            )
            return []
    return [flag]


def normalise(name: str) -> str:
    """A distribution name in its canonical form (PEP 503): opencv_Python -> opencv-python."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions() -> set[str]:
    """Canonical names of the distributions installed for this interpreter. pip's build
    isolation takes the environment's site-packages off sys.path, so they are searched
    explicitly too."""
    paths = [*sys.path, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    names = (dist.metadata["Name"] for dist in importlib.metadata.distributions(path=paths))
    return {normalise(name) for name in names if name}


def opencv_requirement(installed: Iterable[str]) -> str:
    """The OpenCV requirement for an environment holding the distributions ``installed``
    (names, or a mapping keyed by name): an OpenCV distribution that is already installed,
    at the same minimum version, rather than a second one beside it; otherwise the
    headless one."""
    names = {normalise(name) for name in installed}
    chosen = next((name for name in OPENCV_DISTRIBUTIONS if name in names), OPENCV_DEFAULT)
    return f"{chosen}>={OPENCV_MINIMUM}"


def install_requires(installed: Iterable[str]) -> list[str]:
    """The runtime dependencies for an environment holding the distributions ``installed``."""
    return ["numpy>=1.23", opencv_requirement(installed), "tqdm>=4.60"]


def main() -> None:
    from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
    from setuptools import setup

    class BuildExt(build_ext):
        """build_ext that adds OpenMP when a probe program compiles, links and runs."""

        def build_extensions(self) -> None:
            flags = openmp_flags(self.compiler)
            for ext in self.extensions:
                ext.extra_compile_args += flags
                ext.extra_link_args += flags
            super().build_extensions()

    version = {}
    exec((HERE / "sifternet" / "_version.py").read_text(), version)
    compile_args = ["-O3"]
    link_args: list[str] = []
    macros = [("VERSION_INFO", version["__version__"])]
    if _flag("SIFTERNET_NATIVE"):
        compile_args.append("-march=native")
    sanitize = os.environ.get("SIFTERNET_SANITIZE", "").strip()
    if sanitize:
        sanitizer = [f"-fsanitize={sanitize}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
        compile_args = ["-O1", "-g", *sanitizer]
        link_args = sanitizer
        macros.append(("SIFTERNET_NO_CLONES", "1"))  # ifunc resolvers run before ASan is up

    ext = Pybind11Extension(
        "sifternet._core",
        sorted(str(p.relative_to(HERE)) for p in (HERE / "csrc").glob("*.cpp")),
        include_dirs=["csrc"],
        depends=sorted(str(p.relative_to(HERE)) for p in (HERE / "csrc").glob("*.hpp")),
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        cxx_std=17,
    )

    ParallelCompile("SIFTERNET_BUILD_JOBS", default=2).install()

    setup(
        version=version["__version__"],
        # Decided when the metadata is built, so a wheel carries the OpenCV of the
        # environment that built it: one built where opencv-python is installed requires
        # opencv-python (pip's wheel cache may reuse such a wheel for another environment;
        # --no-cache-dir avoids it). Build wheels to ship where no OpenCV or the headless
        # one is installed: an isolated `python -m build` or cibuildwheel sees none.
        install_requires=install_requires(installed_distributions()),
        ext_modules=[ext],
        cmdclass={"build_ext": BuildExt},
    )


if __name__ == "__main__":  # as setuptools' build backend and `python setup.py` run it
    main()
