# streamml tasks. `make help` lists them; CI runs the same targets as the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := maturin pyarrow numpy polars scikit-learn lightgbm xgboost-cpu pytest ruff testcontainers
# monitoring: the ADBC store drivers, DuckDB and Bytewax.
DEPS += adbc-driver-manager adbc-driver-sqlite adbc-driver-postgresql duckdb bytewax confluent-kafka
BENCH_DEPS := lleaves llvmlite onnxruntime onnxmltools onnx tl2cgen treelite
# The cargo target dir lives outside the checkout so fresh clones reuse the
# compiled dependencies; override to build elsewhere.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/streamml/cargo-target
EXT := $(if $(filter Darwin,$(shell uname -s)),dylib,so)
MODELS := build/models
RUST_MODELS := s1_logistic panicking
# The evaluator ships inside the Python package (python/streamml/_evaluator).
EVALUATOR_DIR := python/streamml/_evaluator

.PHONY: help setup build models demo test test-rust test-python bench lint clean

help: ## list the tasks
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.deps: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt $(DEPS)
	touch $@

# The peers benchmarks measure against; only `make bench` needs them.
$(VENV)/.bench-deps: $(VENV)/.deps
	$(PY) -m pip install --quiet -c constraints.txt $(BENCH_DEPS)
	touch $@

setup: build models ## create .venv, install pinned dependencies, build the extension and example models

build: $(VENV)/.deps ## build the Rust extension into .venv (release)
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release --quiet

models: ## build the example model binaries into build/models, and the evaluator `streamml compile` uses
	mkdir -p $(MODELS) $(EVALUATOR_DIR)
	cd operators && cargo build --release --quiet -p streamml-sdk --examples && cargo build --release --quiet -p streamml-evaluator
	for m in $(RUST_MODELS); do cp $(CARGO_TARGET_DIR)/release/examples/lib$$m.$(EXT) $(MODELS)/$$m.$(EXT); done
	cp $(CARGO_TARGET_DIR)/release/libstreamml_evaluator.$(EXT) $(EVALUATOR_DIR)/

demo: setup ## run the main job on embedded defaults
	$(VENV)/bin/streamml demo

test: setup test-rust test-python ## run every test

test-rust: ## Rust unit and integration tests
	cd operators && cargo test --quiet --workspace --exclude streamml-python

test-python: ## Python tests and doctests
	$(PY) -m pytest

bench: setup $(VENV)/.bench-deps ## benchmarks (tables with ratios against peers measured in the same run)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/compile_r1.py
	$(PY) benchmarks/monitoring.py

lint: $(VENV)/.deps ## ruff and clippy
	$(VENV)/bin/ruff check python tests benchmarks
	cd operators && cargo clippy --quiet --workspace --all-targets -- -D warnings

clean: ## remove build outputs (keeps the cargo cache)
	rm -rf $(VENV) build out
