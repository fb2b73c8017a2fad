#!/usr/bin/env bash
# Run the SiO2 example on 2 MPI ranks with pair_style gnnff and write a stability report.
#   ./run_mpi.sh [MODEL.pt|BUNDLED-NAME] [nvt|nve] [STEPS]    (default: sio2-allegro-decorrelated)
# Needs the gnnff environment active (its python, mpirun, lmp and gnnff on PATH).
# PLAIN=1 ./run_mpi.sh MODEL.pt  runs the bare LAMMPS binary instead: native checks only
# (gnnff_stability.jsonl, failing.extxyz, stop on failure), no RDF, report or Stability Index.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=${1:-sio2-allegro-decorrelated}
[ -f "$model" ] || model=$(gnnff path "$model")   # a bundled model by registry name
model=$(realpath "$model")
kind=${2:-nvt}
steps=${3:-1000}
[ -f "$model" ] || { echo "model file $model not found" >&2; exit 2; }

# compile (or reuse the cached) plugin; `import lammps` / lmp then find pair_style gnnff
gnnff lammps build-plugin --quiet >/dev/null
cd "$here"
if [ "${PLAIN:-0}" = "1" ]; then
    exec mpirun -np 2 lmp -in "in.sio2_${kind}" -var model "$model" -var steps "$steps" \
        -var gnnff_monitor 10 -log "log.sio2_${kind}"
fi
# close contacts are judged against the training data's pair distances stored in the model
exec gnnff lammps run "in.sio2_${kind}" --np 2 --var "model=$model" --var "steps=$steps" \
    --out "run_${kind}"
