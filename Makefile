# One entry point for people and CI. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
# VENV=/some/dir installs and runs everything in another virtual environment.
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto')
STUBS := protos/.generated

# Every target installs from uv.lock what it needs, and only that: make run the runtime and the
# embedded servers, make test the dev, k8s and bench extras too. uv installs into $(VENV) exactly
# the locked versions (--locked: it stops when pyproject.toml and uv.lock disagree; `uv lock` updates
# the lock) and keeps what another target added (--inexact). A change to either file reinstalls.
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
UV_STAMP := $(VENV)/.uv-$(UV_VERSION)
UV_SYNC := UV_PROJECT_ENVIRONMENT="$(abspath $(VENV))" $(UV) sync --locked --inexact --compile-bytecode
EXTRAS_runtime := embedded
EXTRAS_dev := embedded dev
EXTRAS_k8s := embedded k8s
EXTRAS_bench := embedded bench
EXTRAS_test := embedded dev k8s bench
RUNTIME := $(VENV)/.installed-runtime
# What one install also provides, so that it is not redone: every install has the runtime.
COVERS_test := dev k8s bench

# Bytecode is written at install time, for the dependencies (uv's --compile-bytecode, as the image
# does) and for the project's own code (`bytecode`, before anything runs): where
# PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile every module it imports
# again when it starts, about three seconds of CPU for each service and the gateway.
CODE := account catalog order payment notification gateway servicekit ecommerce_cli chaos bench tools protos

.PHONY: bytecode install proto-gen run test test-unit test-integration test-e2e lint fmt schema k8s-validate clean bench chaos help image image-test graphiql-assets

install: $(RUNTIME) $(STUBS) ## install the runtime and generate the gRPC stubs

$(UV_STAMP):
	@echo "==> [1/3] Creating $(VENV) with uv $(UV_VERSION), which installs from uv.lock"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

$(VENV)/.installed-%: pyproject.toml uv.lock | $(UV_STAMP)
	@echo "==> [2/3] Installing the project's locked dependencies with the extras: $(EXTRAS_$*) into $(VENV)"
	$(UV_SYNC) $(addprefix --extra ,$(EXTRAS_$*))
	touch $(sort $@ $(RUNTIME) $(foreach p,$(COVERS_$*),$(VENV)/.installed-$p))

# Python stubs and mypy .pyi stubs next to their sources; never committed.
$(STUBS): $(RUNTIME) $(PROTOS)
	@echo "==> [3/3] Generating the gRPC stubs from protos/"
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos \
		--python_out=protos --grpc_python_out=protos \
		--mypy_out=protos --mypy_grpc_out=protos $(PROTOS)
	touch $@

# Fast when nothing changed: compileall skips what is up to date.
bytecode: $(RUNTIME) $(STUBS) ## compile the project's code to bytecode (run, test, bench and chaos do it first)
	$(PY) -m compileall -q -j 0 $(CODE) >/dev/null

proto-gen: $(RUNTIME) ## regenerate the gRPC stubs from protos/
	rm -f $(STUBS)
	$(MAKE) $(STUBS)

run: install bytecode ## run the whole platform (ecommerce dev)
	$(VENV)/bin/ecommerce dev

# ruff, the import-linter contracts, mypy over the project's own code (pyproject.toml [tool.mypy]),
# buf's STANDARD lint rules (buf.yaml), and buf breaking: the
# protos must stay wire- and generated-code-compatible with the last release tag (before one exists,
# with the previous commit).
lint: $(VENV)/.installed-dev $(STUBS) ## ruff, the import contracts, mypy, buf lint and buf breaking
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/buf lint
	$(PY) -m tools.proto_breaking

fmt: $(VENV)/.installed-dev ## format and fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-export the gateway's SDL after an API change (a test fails when it is stale).
schema: $(VENV)/.installed-dev $(STUBS) ## re-export gateway/schema.graphql after an API change
	$(VENV)/bin/strawberry export-schema gateway.schema:schema --output gateway/schema.graphql

# Render every overlay (kubectl kustomize, or kustomize build) and validate each object against the
# Kubernetes schemas and our rules (probes, limits, restricted security context, PDBs, policies).
k8s-validate: $(VENV)/.installed-k8s $(STUBS) ## render and validate every Kubernetes overlay
	$(PY) -m tools.k8s_validate

test: $(VENV)/.installed-test $(STUBS) bytecode lint k8s-validate ## lint, type check, validate the manifests and run every test
	$(PY) -m pytest tests

# The benchmark (README "Benchmarks"): about ten minutes on a quiet machine; writes
# bench/results/<date>/. BENCH_ARGS passes options, e.g. BENCH_ARGS="--profile search".
bench: $(VENV)/.installed-bench $(STUBS) bytecode ## the benchmark (about ten minutes; BENCH_ARGS)
	$(PY) -m bench.run $(BENCH_ARGS)

# The fault-injection suite (README "Reliability"): every fault under a steady load of orders,
# the invariants checked after each; about fifteen minutes; writes bench/results/<date>-chaos/.
# make test runs its short version. CHAOS_ARGS passes options, e.g. CHAOS_ARGS="--faults 'kill order'".
chaos: install bytecode ## the fault-injection suite (about fifteen minutes; CHAOS_ARGS)
	$(PY) -m chaos.run $(CHAOS_ARGS)

test-unit: $(VENV)/.installed-test $(STUBS) bytecode ## the unit tests
	$(PY) -m pytest tests/unit

test-integration: $(VENV)/.installed-test $(STUBS) bytecode ## the integration tests
	$(PY) -m pytest tests/integration

test-e2e: $(VENV)/.installed-test $(STUBS) bytecode ## the end-to-end tests
	$(PY) -m pytest tests/e2e

clean: ## remove the virtualenv, stubs and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache $(STUBS)
	find protos -name '*_pb2*.py*' -delete
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

help: ## list the targets
	@awk -F':.*## ' '/^[a-zA-Z0-9_-]+:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# The container image with podman (installed with apt-get when missing), as root. Without registry
# access the Containerfile's python base cannot be pulled: an equivalent base is built from Debian
# packages first (tools/image.sh says which base it used). IMAGE names the tag.
IMAGE ?= ecommerce:0.1.0
image: ## build the container image with podman (a Debian-built base when none can be pulled)
	IMAGE=$(IMAGE) tools/image.sh

# Every process run from the built image's files against embedded servers on the host, and an
# end-to-end smoke test through its gateway (tools/image_test.py). Not part of make test.
image-test: install ## run every process from the built image and smoke-test it
	$(PY) -m tools.image_test --image $(IMAGE)

# Re-fetch GraphiQL's pinned files from npm into gateway/static/graphiql/ (tools/graphiql_assets.py).
graphiql-assets: install ## fetch GraphiQL's pinned files from npm again
	$(PY) -m tools.graphiql_assets
