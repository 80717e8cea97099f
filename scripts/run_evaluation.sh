#!/usr/bin/env bash
# Regenerates the README's "Evaluation" tables: BadNet (3x3 white patch, corner and
# interior) on MNIST, Fashion-MNIST and GTSRB, the paper's binary mode with its published
# settings beside the repair mode, the controls and a median filter.
# Usage: scripts/run_evaluation.sh [SHARED_DATA_DIR] [OUT_DIR]   (about 45 minutes on 2 cores, training included)
set -euo pipefail
data=${1:-"$(dirname "$0")/../../shared/data"}
out=${2:-evaluation}
mkdir -p "$out"
for position in bottom_right interior; do
  sifternet evaluate "$data/mnist_test.npz" --out "$out/mnist-$position" --position "$position" \
    --binarize global --steps 800 --per-class 10 --model-cache "$out/mnist-$position.pt"
  sifternet evaluate "$data/fashion_mnist_test.npz" --out "$out/fmnist-$position" --position "$position" \
    --binarize local_mean --block-size 11 --steps 800 --per-class 1 --model-cache "$out/fmnist-$position.pt"
  sifternet evaluate "$data/gtsrb.npz" --out "$out/gtsrb-$position" --position "$position" \
    --binarize local_mean --block-size 15 --steps 200 --per-class 10 --epochs 8 \
    --model-cache "$out/gtsrb-$position.pt"
done
# Blended (alpha 0.2), SIG (delta 40, f 6, clean-label) and WaNet (k 4, s 0.5), defaults of
# BackdoorBench, with the same purifier settings per data set.
for attack in blended sig wanet; do
  sifternet evaluate "$data/mnist_test.npz" --out "$out/mnist-$attack" --attack "$attack" \
    --binarize global --steps 800 --per-class 10 --model-cache "$out/mnist-$attack.pt"
  sifternet evaluate "$data/fashion_mnist_test.npz" --out "$out/fmnist-$attack" --attack "$attack" \
    --binarize local_mean --block-size 11 --steps 800 --per-class 1 --model-cache "$out/fmnist-$attack.pt"
  sifternet evaluate "$data/gtsrb.npz" --out "$out/gtsrb-$attack" --attack "$attack" \
    --binarize local_mean --block-size 15 --steps 200 --per-class 10 --epochs 8 \
    --model-cache "$out/gtsrb-$attack.pt"
done

# The summary table of the README.
python "$(dirname "$0")/summarize_evaluation.py" "$out"
