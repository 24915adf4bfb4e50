# anchor — the two commands a newcomer needs are `make demo` and `make test`.
# Both bootstrap their own environment: a venv cached per machine (scripts/bootstrap.sh) and, for the tests,
# the real servers built from the Go module proxy into a per-machine cache (scripts/test-tools.sh) and the
# images (scripts/images.sh, cached by content) with a Docker daemon that lives as long as the test run
# (scripts/with-docker.sh).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV = $(shell scripts/bootstrap.sh)
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`: the real node, the operator's control plane and the Compose stacks spend most
# of their time waiting on servers, so four workers keep two cores busy (tests/conftest.py groups them).
TEST_WORKERS ?= 4
HELM_DOCS_VERSION = $(shell sed -n 's/^HELM_DOCS_VERSION="\(.*\)"/\1/p' scripts/test-tools.sh)

.PHONY: demo test suite images lint typecheck unit tools tools-helm schema crd manifests bench bench-peers help

help:
	@echo "make demo   render the bundled Japanese sample to ./out on the CPU stand-in engine"
	@echo "make test   lint, type-check and run the whole test suite (builds MinIO once per machine)"

demo:
	$(VENV)/bin/anchor demo --out out

tools:
	scripts/host-packages.sh
	scripts/test-tools.sh >/dev/null

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile.job Dockerfile.controller Dockerfile.voicevox-mock
	$(VENV)/bin/shellcheck scripts/*.sh .ci/run k8s/kind/up.sh

typecheck:
	$(VENV)/bin/mypy

test: tools lint typecheck
	scripts/with-docker.sh $(MAKE) --no-print-directory suite

# The images (exit 3: no Docker here, and the image and real-node tests skip saying so), then every test.
suite: images
	$(VENV)/bin/pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

images:
	scripts/images.sh --sizes >/dev/null || [ $$? -eq 3 ]

unit:
	$(VENV)/bin/pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

bench: tools
	$(VENV)/bin/python -m benchmarks.render_speed
	$(VENV)/bin/python -m benchmarks.reconcile
	$(VENV)/bin/python -m benchmarks.run_cost --stories 5

bench-peers:
	$(VENV)/bin/python -m benchmarks.render_peers --lengths 60,180 --repeat 2

schema:
	$(VENV)/bin/anchor schema > tests/unit/snapshots/spec.schema.json

# The CRD, generated from api/v1alpha1.py into the chart (which templates it), then everything rendered from the chart.
crd:
	$(VENV)/bin/python -m api.crd > charts/anchor/files/crds/newsbroadcasts.anchor.news.yaml

# k8s/: the chart's default installation as plain manifests, for `kubectl apply` without Helm (tests/unit/test_k8s.py
# checks they are in sync). The chart's README from the comments in values.yaml (helm-docs).
manifests: crd tools-helm
	$(VENV)/bin/python -m scripts.manifests
	$$(scripts/test-tools.sh --path)/helm-docs-$(HELM_DOCS_VERSION)/helm-docs --chart-search-root charts \
	  --template-files README.md.gotmpl --log-level warning

tools-helm:
	scripts/test-tools.sh >/dev/null
