# gnnff: one-command setup, tests, demo and benchmarks.
PY      ?= python3
VENV    := .venv
BENCH_VENV := .venv-bench
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.gnnff-setup-stamp

.PHONY: setup test demo bench bench-env lint clean

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

# torch first, pinned to the local CPU build; then the package with its extras.
$(STAMP): $(VPY) pyproject.toml
	$(VPY) -m pip install --quiet "torch==2.13.0"
	$(VPY) -m pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

setup: $(STAMP)
	$(VPY) -c "import gnnff._mpi_hook as h; h.write_pth()"
	$(VENV)/bin/gnnff lammps build-plugin --quiet

test: setup
	$(VENV)/bin/python -m pytest -q tests

demo: setup
	$(VENV)/bin/gnnff demo --out demo_out

# torch 2.13.0 + nequip + nequip-allegro + gnnff in a separate env, for the anchor comparison
bench-env:
	bash benchmarks/nequip_env.sh

bench: setup bench-env
	$(VENV)/bin/python benchmarks/run_all.py

lint: setup
	$(VENV)/bin/ruff check gnnff tests benchmarks examples

clean:
	rm -rf $(VENV) $(BENCH_VENV) demo_out build *.egg-info
