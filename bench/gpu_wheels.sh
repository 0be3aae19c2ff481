#!/usr/bin/env bash
# Wheels that bench/gpu_smoke.py needs on a GPU node whose image lacks them (no network there): TRL, datasets and
# pydantic with their own missing dependencies, at the versions of uv.lock's default environment. PyAV is not
# needed: the script hands the project synthetic frames and audio.
#   bench/gpu_wheels.sh [DEST] [PYTHON_VERSION]      (defaults: .whl and 3.12, the GPU image's Python)
# DEST must be git-ignored (`echo /.whl/ >> .git/info/exclude`) and travel as a carried path.
set -euo pipefail
dest=${1:-.whl}
py=${2:-3.12}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  "${platforms[@]}" -d "$dest" \
  trl==1.16.0 datasets==5.2.0 dill==0.3.8 multiprocess==0.70.16 \
  pydantic==2.12.3 pydantic-core==2.41.4 annotated-types==0.7.0 typing-inspection==0.4.5 typing-extensions==4.15.0
ls -l "$dest"
