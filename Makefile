# gnnff: one-command setup, tests, demo and benchmarks.
PY      ?= python3
VENV    := .venv
BENCH_VENV := .venv-bench
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.gnnff-setup-stamp

.PHONY: setup test test-all test-slow demo bench bench-env lint format-check typecheck docs clean

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

# torch first, pinned to the local CPU build; then the package with its extras.
$(STAMP): $(VPY) pyproject.toml
	$(VPY) -m pip install --quiet "torch==2.13.0"
	$(VPY) -m pip install --quiet -e ".[test,bench,teacher]"
	touch $(STAMP)

setup: $(STAMP)
	$(VPY) -c "import gnnff.lammps.mpi_hook as h; h.write_pth()"
	$(VENV)/bin/gnnff lammps build-plugin --quiet

# the README's test command: everything except tests marked slow (< 10 min on 2 cores)
test: setup
	$(VENV)/bin/python -m pytest -q tests

# only the long learning tests (marked slow)
test-slow: setup
	$(VENV)/bin/python -m pytest -q -m slow tests

# the whole suite, slow tests included
test-all: setup
	$(VENV)/bin/python -m pytest -q -m "" tests

demo: setup
	$(VENV)/bin/gnnff demo --out demo_out

# torch 2.13.0 + nequip + nequip-allegro + gnnff in a separate env, for the anchor comparison
bench-env:
	bash benchmarks/nequip_env.sh

bench: setup bench-env test-slow
	$(VENV)/bin/python benchmarks/run_all.py

LINT_PATHS := gnnff tests benchmarks examples

lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)

format-check: setup
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

# strict packages and per-module exceptions: pyproject.toml [tool.mypy]
typecheck: setup
	$(VENV)/bin/mypy

# the documentation site (mkdocs.yml): docs extra into .venv, then a strict build into site/
# (a warning, a broken link or an unresolved API name fails)
docs: $(STAMP)
	$(VPY) -m pip install --quiet -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) $(BENCH_VENV) demo_out build site *.egg-info
