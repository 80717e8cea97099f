"""Build of sifternet's C++ kernel (sifternet._core).

Environment switches:
  SIFTERNET_NATIVE=1     compile for this machine's CPU (-march=native); such a build
                         may crash on older CPUs, so never ship it as a wheel.
  SIFTERNET_NO_OPENMP=1  build without OpenMP (serial; results are identical).
  SIFTERNET_SANITIZE=address,undefined
                         build with AddressSanitizer and UBSan (-O1 -g, any report is
                         fatal, no CPU-dispatch clones); run Python with the ASan runtime
                         preloaded, see the README's "Reliability" section.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, ParallelCompile, build_ext
from setuptools import setup

HERE = Path(__file__).resolve().parent
VERSION = {}
exec((HERE / "sifternet" / "_version.py").read_text(), VERSION)

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


class BuildExt(build_ext):
    """build_ext that adds OpenMP when a probe program compiles, links and runs."""

    def build_extensions(self) -> None:
        flags = openmp_flags(self.compiler)
        for ext in self.extensions:
            ext.extra_compile_args += flags
            ext.extra_link_args += flags
        super().build_extensions()


compile_args = ["-O3"]
link_args: list[str] = []
macros = [("VERSION_INFO", VERSION["__version__"])]
if _flag("SIFTERNET_NATIVE"):
    compile_args.append("-march=native")
SANITIZE = os.environ.get("SIFTERNET_SANITIZE", "").strip()
if SANITIZE:
    sanitizer = [f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
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
    version=VERSION["__version__"],
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt},
)
