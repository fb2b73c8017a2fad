#!/usr/bin/env bash
# Create .venv-bench: torch (pinned CPU build) + nequip + nequip-allegro + gnnff (editable), so
# benchmarks/bench_vs_nequip.py can import both codes in one process. Idempotent: does nothing
# when everything imports already. About 1 minute and 1.6 GB (torch is most of it).
#
#   bash benchmarks/nequip_env.sh            # from the repository root
#   PY=python3.11 bash benchmarks/nequip_env.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv-bench}"   # override only for testing
PY="${PY:-python3}"
TORCH_PIN="torch==2.13.0"        # same build as .venv; nequip must not replace it
NEQUIP_PINS=("nequip==0.19.1" "nequip-allegro==0.8.3")

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c \
    "import torch, nequip, allegro, gnnff, psutil; assert torch.__version__.startswith('2.13.0')" \
    2>/dev/null; then
  echo "nequip_env: $VENV is ready"
  exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip
"${PIP[@]}" install --quiet "$TORCH_PIN"
# refuse to continue if nequip would pull a different torch
if "${PIP[@]}" install --dry-run "${NEQUIP_PINS[@]}" "$TORCH_PIN" 2>/dev/null \
    | grep -E "^Would install" | grep -qE "(^| )torch-"; then
  echo "nequip_env: ${NEQUIP_PINS[*]} want a torch other than $TORCH_PIN; not installing" >&2
  exit 1
fi
"${PIP[@]}" install --quiet "${NEQUIP_PINS[@]}" "$TORCH_PIN"
"${PIP[@]}" install --quiet -e "$ROOT[bench]" "$TORCH_PIN"
"$VENV/bin/python" -c "import torch, nequip, allegro, gnnff; print('nequip_env: torch', \
torch.__version__, '| nequip', nequip.__version__, '| ready')"
echo "nequip_env: done in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1)"
