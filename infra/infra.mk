# Infrastructure targets. Included by the root Makefile, which defines VENV, PY, the `tools`
# target (the .venv with cargo-lambda, ziglang, cfn-lint, aws-sam-translator, moto, pytest) and
# puts .venv/bin first on PATH (cargo-lambda cross-compiles with the zig from that venv).

# Every functions/check-<name> crate is a check binary, so a new check needs no change here.
LAMBDA_BINS   := $(notdir $(wildcard functions/check-*)) pagerduty-forwarder
LAMBDA_TARGET := aarch64-unknown-linux-gnu
SAM           ?= sam

.PHONY: build deploy validate test-infra

## build: target/lambda/<bin>/bootstrap.zip (arm64) for each function, as infra/template.yaml expects
build: build-tools
	@rustup target list --installed | grep -qx '$(LAMBDA_TARGET)' || rustup target add $(LAMBDA_TARGET)
	cargo lambda build --release --arm64 --output-format zip $(addprefix --bin ,$(LAMBDA_BINS))
	@for bin in $(LAMBDA_BINS); do \
	  test -s target/lambda/$$bin/bootstrap.zip || { echo "build: target/lambda/$$bin/bootstrap.zip is missing" >&2; exit 1; }; \
	done

## deploy: sam deploy of infra/template.yaml; guided (and writes infra/samconfig.toml) on the first run
deploy: build
	@command -v $(SAM) >/dev/null 2>&1 || { \
	  echo "deploy: the AWS SAM CLI ('$(SAM)') is not installed." >&2; \
	  echo "  install it with:  pipx install aws-sam-cli   (or: $(VENV)/bin/pip install aws-sam-cli)" >&2; \
	  echo "  or see https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html" >&2; \
	  exit 1; }
	cd infra && if [ -f samconfig.toml ]; then \
	  $(SAM) deploy --template-file template.yaml; \
	else \
	  $(SAM) deploy --template-file template.yaml --guided; \
	fi

## validate: cfn-lint, no errors and no warnings
validate: tools
	$(VENV)/bin/cfn-lint infra/template.yaml infra/check.yaml

## test-infra: SAM transform + least-privilege checks + stack creation in moto (loopback only)
test-infra: tools
	$(PY) -m pytest infra/tests -q
