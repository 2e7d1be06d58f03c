# streamml tasks. `make help` lists them; CI runs the same targets as the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := maturin pyarrow numpy polars scikit-learn lightgbm xgboost-cpu pytest ruff testcontainers
# pandas: FastFrugalTreeClassifier's tests fit and predict from pandas frames as well.
DEPS += pandas
# CatBoost: its converter's parity tests fit models and compare with its own predict.
DEPS += catboost
# ONNX import (streamml compile model.onnx) and its tests: the graph reader, onnxruntime, the converters.
DEPS += onnx onnxruntime skl2onnx onnxmltools
# Hosts: Bytewax (streamml.bytewax), the Kafka scorer (streamml score) and its metrics.
DEPS += bytewax confluent-kafka prometheus-client
# Monitoring: the ADBC store drivers (SQLite, PostgreSQL) and DuckDB (ships its own ADBC driver).
DEPS += adbc-driver-manager adbc-driver-sqlite adbc-driver-postgresql duckdb
# Model lifecycle: models:/ references and log_model (streamml[mlflow]), a registry on SQLite in the tests.
DEPS += mlflow-skinny sqlalchemy alembic
BENCH_DEPS := lleaves llvmlite onnxruntime onnxmltools onnx skl2onnx tl2cgen treelite
# The cargo target dir lives outside the checkout so fresh clones reuse the
# compiled dependencies; override to build elsewhere.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/streamml/cargo-target
EXT := $(if $(filter Darwin,$(shell uname -s)),dylib,so)
MODELS := build/models
RUST_MODELS := s1_logistic panicking typed_inputs
# The evaluator ships inside the Python package, one per target (python/streamml/_evaluator/<target>).
HOST_TARGET := $(shell uname -s | tr A-Z a-z)-$(shell uname -m | sed 's/^arm64$$/$(if $(filter Darwin,$(shell uname -s)),arm64,aarch64)/')
EVALUATOR_DIR := python/streamml/_evaluator/$(HOST_TARGET)

.PHONY: help setup build models demo test test-rust test-python bench lint clean
.PHONY: test-java wheels test-wheel

help: ## list the tasks
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.deps: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt $(DEPS)
	@# The repository's own helpers (repo layout, services, workloads: tests/support/streamml_dev)
	@# are importable in .venv, by tests, benchmarks and the Maven builds; the package never imports them.
	echo "$(CURDIR)/tests/support" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/streamml-dev.pth"
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

test: setup test-rust test-python test-java test-wheel ## run every test (the wheels too: built, installed and used outside the checkout)

test-rust: ## Rust unit and integration tests
	cd operators && cargo test --quiet --workspace --exclude streamml-python

test-python: ## Python tests and doctests
	$(PY) -m pytest

bench: setup $(VENV)/.bench-deps ## benchmarks (tables with ratios against peers measured in the same run)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/compile_r1.py
	$(PY) benchmarks/evaluator_walks.py
	$(PY) benchmarks/kafka_score.py
	$(PY) benchmarks/bytewax_r1.py
	$(PY) benchmarks/monitoring.py
	$(PY) benchmarks/flink_r1.py

lint: $(VENV)/.deps ## ruff, clippy, and one version in Cargo.toml and the poms
	scripts/version.sh check
	$(VENV)/bin/ruff check python tests benchmarks build_backend scripts
	cd operators && cargo clippy --quiet --workspace --all-targets -- -D warnings
	@# The benchmark-only switches (cargo feature bench-switches; shipped builds leave it off).
	cd operators && cargo clippy --quiet -p streamml-core -p streamml-evaluator --all-targets --features streamml-core/bench-switches,streamml-evaluator/bench-switches -- -D warnings

clean: ## remove build outputs (keeps the cargo cache)
	rm -rf $(VENV) build out dist streamml-demo python/streamml/_evaluator

# The Flink connector and the UDF example: Maven builds the JNI library with cargo (honouring
# CARGO_TARGET_DIR), the fixtures with .venv's Python, and runs JUnit on a Flink MiniCluster;
# the example's Kafka test needs the broker scripts/kafka.sh starts (or STREAMML_KAFKA_BOOTSTRAP).
test-java: setup ## Java tests: connectors/flink and examples/flink-udf (Flink MiniCluster, Kafka)
	@if [[ -z "$${STREAMML_KAFKA_BOOTSTRAP:-}" ]]; then scripts/kafka.sh start >/dev/null; fi
	cd connectors/flink && mvn -B -q install
	cd examples/flink-udf && mvn -B -q verify

# PyFlink, the Flink benchmark's peer, pins numpy/pyarrow apart from constraints.txt: own venv.
PYFLINK_VENV := .venv-pyflink
$(PYFLINK_VENV)/.deps: benchmarks/pyflink-constraints.txt
	$(PYTHON) -m venv $(PYFLINK_VENV)
	$(PYFLINK_VENV)/bin/python -m pip install --quiet -r benchmarks/pyflink-constraints.txt
	touch $@
bench: $(PYFLINK_VENV)/.deps
# whylogs, the drift benchmark's profiling peer, needs NumPy < 2: its own venv too.
WHYLOGS_VENV := .venv-whylogs
$(WHYLOGS_VENV)/.deps: benchmarks/whylogs-constraints.txt
	$(PYTHON) -m venv $(WHYLOGS_VENV)
	$(WHYLOGS_VENV)/bin/python -m pip install --quiet -r benchmarks/whylogs-constraints.txt
	touch $@
bench: $(WHYLOGS_VENV)/.deps

# Wheels, manylinux_2_28, x86_64 and aarch64, each with the evaluators of both (so `streamml
# compile --target` writes binaries for either): per platform one for CPython 3.11 (cp311, which pip
# prefers there) and one abi3 (CPython 3.12+), because abi3 costs 3-5 % per event in a Bytewax
# predict_op flow (docs/performance.md). zig (ziglang from PyPI) links against glibc 2.28; the
# Rust targets are added with rustup. Cargo's output stays in CARGO_TARGET_DIR.
WHEEL_TARGETS := x86_64 aarch64
WHEEL_ABIS := cp311 abi3
GLIBC := 2.28
$(VENV)/.wheel-deps: $(VENV)/.deps
	$(PY) -m pip install --quiet -c constraints.txt ziglang cargo-zigbuild auditwheel
	touch $@

wheels: $(VENV)/.wheel-deps ## wheels (cp311 and abi3, manylinux_2_28, x86_64 + aarch64, both evaluators inside) into dist/
	rustup target add $(foreach t,$(WHEEL_TARGETS),$(t)-unknown-linux-gnu) >/dev/null
	rm -f dist/streamml-*.whl
	PATH="$(abspath $(VENV))/bin:$$PATH" STREAMML_GLIBC=$(GLIBC) \
	  $(PY) build_backend/streamml_build.py $(foreach t,$(WHEEL_TARGETS),linux-$(t))
	for t in $(WHEEL_TARGETS); do for abi in $(WHEEL_ABIS); do \
	  PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/maturin build --release --quiet --zig \
	    $$(if [ $$abi = abi3 ]; then echo --features abi3; else echo --interpreter python3.11; fi) \
	    --target $$t-unknown-linux-gnu --compatibility manylinux_$(subst .,_,$(GLIBC)) --out dist || exit 1; \
	  whl=$$(ls dist/streamml-*-$$([ $$abi = abi3 ] && echo cp311-abi3 || echo cp311-cp311)-*_$$t.whl) && \
	  $(VENV)/bin/auditwheel show $$whl | tr '\n' ' ' | grep -q "manylinux_$(subst .,_,$(GLIBC))_$$t" \
	    || { echo "auditwheel does not agree with the tag of $$whl" >&2; exit 1; }; \
	done; done
	@ls -l dist/streamml-*.whl

# The wheels as users get them: installed outside the checkout (clean virtualenvs, PyPI pinned by
# constraints.txt) and used from an empty directory; the aarch64 binary run under qemu; the glibc
# floor of every shipped library. Needs the broker (STREAMML_KAFKA_BOOTSTRAP, else scripts/kafka.sh).
test-wheel: wheels ## install the wheels in clean venvs outside the repo and use them there (aarch64 under qemu); glibc floor
	scripts/check_glibc.sh dist/streamml-*.whl
	scripts/check_wheel.sh dist/streamml-*-cp311-cp311-*_x86_64.whl
