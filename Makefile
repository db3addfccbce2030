# IronLB — the two commands of the README, and their parts.
#   make lab    the end-to-end demo in a network-namespace lab (root)
#   make test   installs what it lacks, then formatting, clippy, CRD drift, every test
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/bin:$(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: lab test deps fmt-check clippy crds-check chart-check unit-and-e2e build

lab:
	@if [ "$$(id -u)" != 0 ]; then echo "make lab: the lab creates network namespaces and raw sockets; run it as root (sudo make lab)" >&2; exit 1; fi
	@bash scripts/ensure-deps.sh
	$(CARGO) build --bins
	./target/debug/ironlb-lab demo

test: deps fmt-check clippy crds-check chart-check unit-and-e2e

deps:
	@bash scripts/ensure-deps.sh

build:
	$(CARGO) build --workspace --all-targets

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The chart's CRDs must be exactly what the Rust types generate.
crds-check:
	@$(CARGO) run -q -p ironlb-api --bin crdgen > target/crds.yaml
	@diff -u charts/ironlb/crds/ironlb-crds.yaml target/crds.yaml || { echo "charts/ironlb/crds/ironlb-crds.yaml is stale: run 'cargo run -p ironlb-api --bin crdgen > charts/ironlb/crds/ironlb-crds.yaml'" >&2; exit 1; }

# helm lint + helm template of every values set; then every container's flags are
# checked against the real binaries' --help.
chart-check:
	$(CARGO) build --workspace --bins
	CHART_CHECK_BIN_DIR=target/debug bash scripts/chart-check.sh

# Binaries first: the end-to-end tests start the real processes from target/debug.
unit-and-e2e:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast
