#!/usr/bin/env bash
# CUDA check of gnnff on a machine with an NVIDIA GPU (issue 19): the ASE calculator, MD and a
# training step on CUDA equal the CPU to 1e-6 in float64, and calculator timings at 1.5k-98k
# atoms on CUDA and on the same machine's CPU cores, and the neighbour list on the host against
# the list on the GPU (vesin-torch, gnnff[gpu]) per calculator call at 1.5k and 12k atoms
# (benchmarks/device_check.py; the neighbors part is skipped without vesin-torch).
#
#   DATA=data/sio2 OUT=device_check_out bash benchmarks/device_check.sh
#
# From the repository root. Needs python3 with a CUDA build of torch, e3nn, numpy, scipy,
# matplotlib, pyyaml, tqdm; ASE, vesin and vesin-torch are installed from .whl/*.whl when that folder exists
# (a machine without a package index). DATA: a folder with train.extxyz, valid.extxyz and
# reference_md/a-SiO1.10_1000K.extxyz (`gnnff data generate --preset sio2-tersoff`; a few dozen
# frames are enough). Results: $OUT/device_check.json, device_check.log, nvidia-smi.txt.
set -euo pipefail
OUT=${OUT:-device_check_out}
DATA=${DATA:-data/sio2}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gnnff-site .whl/*.whl
    export PYTHONPATH=/tmp/gnnff-site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
lscpu | grep -E '^(Model name|CPU\(s\))' | tee -a "$OUT/nvidia-smi.txt"
python3 -c "import torch, e3nn, ase, vesin; print('torch', torch.__version__, 'cuda',
torch.version.cuda, torch.cuda.is_available(), 'e3nn', e3nn.__version__, 'ase', ase.__version__)
try:
    import vesin_torch; print('vesin-torch', vesin_torch.__version__)
except ImportError:
    print('vesin-torch absent: the neighbors part is skipped')"
python3 benchmarks/device_check.py --out "$OUT" --data "$DATA" --device cuda --work /tmp/gnnff-device-work "$@" 2>&1 |
    tee "$OUT/device_check.log"
