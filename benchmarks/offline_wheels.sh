#!/usr/bin/env bash
# Wheels for an accelerator machine without network whose image already
# holds JAX with its CUDA plugin, flax, optax, orbax, chex, numpy, pillow,
# matplotlib, psutil, protobuf, pyarrow and etils (a stock JAX GPU image):
# the rest of requirements.txt and their own needs, for Python 3.12 x86-64.
#
#   bash benchmarks/offline_wheels.sh DIR        # here, with a package index
#   pip install --no-index --no-deps --target /tmp/site DIR/*.whl  # there
#
# --no-deps on both sides: the image's JAX stays as it is (its CUDA plugin
# must match its jaxlib), and pip does not try to reach an index there.
# About 45 MB, most of it PyAV's bundled FFmpeg.
set -euo pipefail
dir=${1:?usage: offline_wheels.sh DIR}
mkdir -p "$dir"
platforms=()
for p in manylinux1_x86_64 manylinux2014_x86_64 manylinux_2_17_x86_64 \
         manylinux_2_24_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64; do
  platforms+=(--platform "$p")
done
# requirements.txt beyond the image, then what those need.
packages=(ml-collections tensorflow-datasets array-record importlib_resources
          grain av dm-pix tensorboardX
          portpicker dm-tree immutabledict simple_parsing docstring-parser
          tensorflow-metadata googleapis-common-protos termcolor toml)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$dir" "${packages[@]}"
# promise (a TFDS need) is published as a source archive only: build its
# pure-Python wheel here.
python3 -m pip wheel -q --no-deps -w "$dir" promise
ls "$dir"
