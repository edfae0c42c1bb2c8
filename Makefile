# Every target installs what it needs into project-local paths (.venv for the Python tools), so
# a fresh machine with only the Rust toolchain and Python 3 can run them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV       := .venv
PY         := $(VENV)/bin/python
# What the tests and the demo need: moto for local AWS, cfn-lint and the SAM translator for the
# template, pytest for the template test.
TEST_TOOLS := 'moto[server]>=5,<6' 'cfn-lint>=1' 'aws-sam-translator>=1.90' 'pytest>=8' 'boto3>=1.34'
# What cross-compiling the Lambdas needs (make build): cargo-lambda, and zig as its linker.
BUILD_TOOLS := 'cargo-lambda>=1' 'ziglang'

export MOTO_SERVER := $(abspath $(VENV)/bin/moto_server)
export PATH := $(abspath $(VENV)/bin):$(PATH)

.PHONY: help tools build-tools bins demo test fmt lint bench journeys

help:
	@echo "make demo      the four checks as Lambdas against the local demo shop: healthy, broken, healed"
	@echo "make test      everything CI checks: fmt, clippy, unit and end-to-end tests, template checks"
	@echo "make build     arm64 bootstrap.zip per function (cargo lambda)"
	@echo "make journeys  validate every journey file (file:line:column for each mistake)"
	@echo "make deploy    sam deploy of infra/template.yaml (REGIONS=\"home member...\" for several regions, DRY_RUN=1 to print)"

$(VENV)/.test-tools:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(TEST_TOOLS)
	touch $@

$(VENV)/.build-tools: $(VENV)/.test-tools
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(BUILD_TOOLS)
	touch $@

tools: $(VENV)/.test-tools
build-tools: $(VENV)/.build-tools

# Debug builds: the tests and the demo run the real binaries, and a release build would only
# add minutes (make build and make bench do those).
bins:
	cargo build --workspace --bins

demo: tools bins
	target/debug/demo

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

# Every journey: the checks folder as a whole (defaults, dependencies) and the test fixtures. A
# broken journey fails here, with file:line:column, before any test or deploy (make build needs it too).
# CHECKS_DIR: the checks folder make journeys and make build read (make bench times a build of a
# copy with generated checks added; the folder keeps its name, checks, inside the zip).
CHECKS_DIR ?= checks
JOURNEYS := $(CHECKS_DIR) $(filter-out tests/journeys/invalid%.toml,$(wildcard tests/journeys/*.toml))

journeys: bins
	target/debug/synthetic validate $(JOURNEYS)

test: fmt tools lint bins journeys
	cargo test --workspace
	$(MAKE) --no-print-directory validate test-infra

# What the Python baseline of make bench needs, on top of the test tools.
BENCH_TOOLS := 'requests>=2.31' 'boto3>=1.34'

$(VENV)/.bench-tools: $(VENV)/.test-tools
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(BENCH_TOOLS)
	touch $@

# Benchmarks against a Python baseline (bench/README.md); not part of make test or CI. The arm64
# zips come from make build (their size is reported); what runs here is the native release build
# of the same binaries, built alone so that the harness's dependencies do not unify into them.
bench: $(VENV)/.bench-tools build
	cargo build --release $(addprefix --bin ,$(LAMBDA_BINS))
	cargo build --release -p synthetic-e2e --bin bench --bin echo-lambda
	target/release/bench

include infra/infra.mk
