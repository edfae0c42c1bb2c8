# Every target installs what it needs into project-local paths (.venv for the
# Python tools), so a fresh machine with only Rust and Python can run them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
PIP_PKGS    := 'moto[server]==5.*' 'cargo-lambda' 'ziglang' 'aws-sam-translator' 'cfn-lint' 'pytest' 'boto3'
export MOTO_SERVER := $(abspath $(VENV)/bin/moto_server)
export PATH := $(abspath $(VENV)/bin):$(PATH)

.PHONY: help tools demo test fmt lint unit bins
help:
	@echo "make demo   - run the four checks as Lambdas against the local demo shop, with faults and alerts"
	@echo "make test   - everything CI checks: fmt, clippy, unit + end-to-end tests, template validation"

$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PIP_PKGS)
	touch $@

tools: $(VENV)/.installed

bins:
	cargo build --workspace --bins

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

unit: tools bins
	cargo test --workspace

include infra/infra.mk
