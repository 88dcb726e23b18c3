# Two commands a user needs: `make run` and `make test`. Both create .venv and install the
# pinned dependencies (pyproject.toml + the lock in .ci/constraints.txt) on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KEDRO_ENV ?= base

# No network besides the package registries: never phone home.
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export MPLBACKEND := Agg
export PYTHONUNBUFFERED := 1
# malloc on transparent huge pages (glibc >= 2.35; ignored elsewhere): XLA allocates each
# step's temporaries afresh, and 4 KiB page faults cost ~10% of an IC2Bert CPU step here.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: install run test lint viz mlflow-ui benchmarks lock clean

install: $(STAMP)

$(STAMP): pyproject.toml .ci/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "icb_kedro needs Python 3.11, got " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt -e ".[dev]"
	@touch $(STAMP)

# The main job, `kedro run` (__default__) on conf/base: the IC2Bert chain (ingestion ->
# harmonization -> folds -> tokenization -> pretraining -> fine-tuning), the baselines, the
# AMU (fused engine, leave-one-cohort-out), the cross-model evaluation and the
# interpretation report.
run: $(STAMP)
	$(BIN)/kedro run --env $(KEDRO_ENV)
	@$(BIN)/python -m icb_kedro.where

test: lint
	$(BIN)/python -m pytest

# Style is checked, not argued: ruff's lint rules (pyproject.toml) and its formatter, 100 columns.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks

viz: $(STAMP)
	$(BIN)/kedro viz run --no-browser

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000

benchmarks: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b; done

# Regenerate the lock after changing pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^icb.kedro' > .ci/constraints.txt

clean:
	rm -rf $(VENV) build .viz
