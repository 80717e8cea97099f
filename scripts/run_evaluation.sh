#!/usr/bin/env bash
# Regenerates the README's "Evaluation" table: BadNet (3x3 white patch, corner and
# interior), Blended (alpha 0.2), SIG (delta 40, f 6, clean-label) and WaNet (k 4, s 0.5)
# on MNIST, Fashion-MNIST and GTSRB; the paper's binary mode with its published settings
# beside the repair modes, the controls, a median filter and IFMV.
# Usage: scripts/run_evaluation.sh [SHARED_DATA_DIR] [OUT_DIR]   (about 45 minutes on 2 cores, training included)
set -euo pipefail
data=${1:-"$(dirname "$0")/../../shared/data"}
out=${2:-evaluation}
mkdir -p "$out"
for setting in "position bottom_right" "position interior" "attack blended" "attack sig" "attack wanet"; do
  read -r flag value <<< "$setting"
  sifternet evaluate "$data/mnist_test.npz" --out "$out/mnist-$value" "--$flag" "$value" \
    --binarize global --steps 800 --per-class 10 --model-cache "$out/mnist-$value.pt"
  sifternet evaluate "$data/fashion_mnist_test.npz" --out "$out/fmnist-$value" "--$flag" "$value" \
    --binarize local_mean --block-size 11 --steps 800 --per-class 1 --model-cache "$out/fmnist-$value.pt"
  sifternet evaluate "$data/gtsrb.npz" --out "$out/gtsrb-$value" "--$flag" "$value" \
    --binarize local_mean --block-size 15 --steps 200 --per-class 10 --epochs 8 \
    --model-cache "$out/gtsrb-$value.pt"
done

# The summary table of the README.
python "$(dirname "$0")/summarize_evaluation.py" "$out"
