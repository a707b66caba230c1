#!/usr/bin/env bash
# Run here, on the CPU machine, before scripts/gpu_bench.sh or scripts/gpu_mnist_scaling.sh
# go to the device machine (see /work/.library/device/README.md):
#   - .whl/       wheels of the Python packages the device image lacks (ml-collections,
#                 tensorboardX), for its Python 3.12
#   - .gpu_data/  real MNIST and Tiny Shakespeare from ../shared/data
# Both folders are git-ignored (.git/info/exclude) and travel with `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in .whl .gpu_data; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
mkdir -p .whl .gpu_data
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "ml-collections==$(python3 -c 'import importlib.metadata as m; print(m.version("ml-collections"))')" \
  "tensorboardX==$(python3 -c 'import importlib.metadata as m; print(m.version("tensorboardX"))')"
SHARED=${SHARED:-../shared/data}
cp "$SHARED/mnist.npz" "$SHARED/tinyshakespeare.txt" .gpu_data/
du -sh .whl .gpu_data
