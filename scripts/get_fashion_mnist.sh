#!/usr/bin/env bash
# Fashion-MNIST's original IDX files without internet access to its host: from Debian's
# `dataset-fashion-mnist` package (apt-get download needs only the package mirror), unpacked into
# <data_dir>/FashionMNIST/raw, the layout torchvision.datasets.FashionMNIST reads.
# Usage: scripts/get_fashion_mnist.sh [data_dir]   (default: data/)
set -euo pipefail
dest="${1:-data}/FashionMNIST/raw"
if [ -f "$dest/t10k-labels-idx1-ubyte" ] && [ -f "$dest/train-images-idx3-ubyte" ]; then
  echo "Fashion-MNIST is already in $dest"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q dataset-fashion-mnist >/dev/null 2>&1) || {
  echo "error: apt-get download dataset-fashion-mnist failed (run 'apt-get update' first, or download the four files from https://github.com/zalandoresearch/fashion-mnist into $dest)" >&2
  exit 2
}
dpkg -x "$work"/dataset-fashion-mnist_*.deb "$work/x"
mkdir -p "$dest"
for f in "$work"/x/usr/share/datasets/fashion-mnist/*-ubyte.gz; do
  gunzip -c "$f" > "$dest/$(basename "${f%.gz}")"
done
echo "Fashion-MNIST written to $dest: train with make train DATASET=fashion_mnist DATA_DIR=${1:-data}"
