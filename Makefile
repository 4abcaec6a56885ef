# sri — common tasks. `make help` lists them.
PYTHON ?= python
STORE ?=
SEED ?= 0

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint demo demo-checkpoints learn tables figures check-paper omniboard bench lint-docker reproduce

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## install sri and everything it needs (keeps an installed torch; else torch 2.13.0, the CPU build where no NVIDIA GPU is found)
	$(PYTHON) scripts/install.py

test: ## run the test suite (slow tests excluded)
	$(PYTHON) -m pytest -q

test-all: ## run every test, slow ones included
	$(PYTHON) -m pytest -q -m ""

lint: ## ruff: pyflakes, import order, line length 120, docstrings of public names (pyproject.toml)
	$(PYTHON) -m ruff check .

demo: ## train SRI and GENv2 on synthetic blocks, then write tables and figures
	$(PYTHON) -m sri.demo

demo-checkpoints: ## retrain demo_checkpoints/ (the demo's starting points) from scratch, with provenance
	$(PYTHON) -m sri.demo --make-checkpoints

MODEL ?= genv2
MINUTES ?= 10
learn: ## learning curve of MODEL (default genv2) on blocks for MINUTES (default 10) -> runs/learn/
	$(PYTHON) -m sri.bench learn --model $(MODEL) --dataset blocks --minutes $(MINUTES)

PRESET ?=
SWEEP ?=
tables: ## logged runs -> tables/table{1..4}.csv and .md (STORE=dir or mongodb URL; PRESET=smoke|demo|all, SWEEP=id to filter)
	$(PYTHON) -m sri.report tables $(if $(STORE),--store $(STORE)) $(if $(PRESET),--preset $(PRESET)) $(if $(SWEEP),--sweep $(SWEEP))

figures: ## Figure 4/6/12/13/15-style plots from the runs' checkpoints -> figures/
	$(PYTHON) -m sri.report figures $(if $(STORE),--store $(STORE)) --seed $(SEED)

check-paper: ## compare our results with the paper's (non-zero exit on a failure)
	$(PYTHON) -m sri.report check-paper $(if $(STORE),--store $(STORE)) $(if $(PRESET),--preset $(PRESET)) $(if $(SWEEP),--sweep $(SWEEP))

TABLE ?= 3
SWEEP_ARGS ?=
reproduce: ## every run of TABLE (default 3), then the tables; PRESET=smoke|demo, SWEEP_ARGS="--jobs 2" or "--launcher slurm --partition gpu ..." (see `sri sweep --help`)
	$(PYTHON) -m sri.cli sweep $(TABLE) $(if $(STORE),--store $(STORE)) $(if $(PRESET),--preset $(PRESET)) $(SWEEP_ARGS)
	$(PYTHON) -m sri.report tables $(if $(STORE),--store $(STORE)) $(if $(PRESET),--preset $(PRESET)) $(if $(SWEEP),--sweep $(SWEEP))

omniboard: ## start Omniboard on 127.0.0.1:9000 against the configured MongoDB
	$(PYTHON) -m sri.report omniboard

gpu-check: ## on a machine with a GPU: smoke runs, train-step fp32/bf16/compiled, evaluation, data pipeline, torchrun (one table)
	PYTHON=$(PYTHON) bash scripts/gpu_check.sh

bench: ## training-step, conversion and data-loader benchmarks
	$(PYTHON) -m sri.bench train-step
	$(PYTHON) -m sri.bench convert
	$(PYTHON) -m sri.bench loader

lint-docker: ## lint docker/ (hadolint, shellcheck, compose structure)
	$(PYTHON) -m pytest -q tests/test_docker.py
