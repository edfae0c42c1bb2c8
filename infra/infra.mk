# Infrastructure targets. Included by the root Makefile, which defines VENV, PY, the `tools`
# target (the .venv with cargo-lambda, ziglang, cfn-lint, aws-sam-translator, moto, pytest) and
# puts .venv/bin first on PATH (cargo-lambda cross-compiles with the zig from that venv).

# Every check runs the one `check` binary, so a new check needs no change here (nor any compile).
# The canary gate is deployed by the example in infra/examples/, not by infra/template.yaml.
LAMBDA_BINS   := check pagerduty-forwarder canary-gate
LAMBDA_TARGET := aarch64-unknown-linux-gnu
# No unwind tables in the Lambda builds: the release profile aborts on panic, so nothing unwinds,
# and Rust's tables were a tenth of each zip. Only this cross build: tests and native builds unwind.
LAMBDA_RUSTFLAGS := CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C force-unwind-tables=no"

.PHONY: build deploy deploy-tools deploy-credentials validate test-infra plan

## plan: regenerate the checks' part of infra/template.yaml from checks/ (commit the result)
plan: bins
	target/debug/synthetic plan --write-template infra/template.yaml

## build: target/lambda/<bin>/bootstrap.zip (arm64) for each function, as the templates expect;
## the checks folder goes into the check's zip, the plan into the forwarder's (CHECK_PLAN_FILE)
build: build-tools journeys
	@rustup target list --installed | grep -qx '$(LAMBDA_TARGET)' || rustup target add $(LAMBDA_TARGET)
	$(LAMBDA_RUSTFLAGS) cargo lambda build --release --arm64 --output-format zip $(addprefix --bin ,$(LAMBDA_BINS))
	@for bin in $(LAMBDA_BINS); do \
	  test -s target/lambda/$$bin/bootstrap.zip || { echo "build: target/lambda/$$bin/bootstrap.zip is missing" >&2; exit 1; }; \
	done
	target/debug/synthetic plan --checks $(CHECKS_DIR) --format json > target/lambda/plan.json
	$(PY) infra/bundle.py target/lambda/check/bootstrap.zip $(CHECKS_DIR)
	$(PY) infra/bundle.py target/lambda/pagerduty-forwarder/bootstrap.zip target/lambda/plan.json

## deploy: sam deploy of infra/template.yaml; guided (and writes infra/samconfig.toml) on the first run;
## REGIONS="home member..." deploys the home stack, then a member stack per other region
# The SAM CLI goes into the venv like every other tool. Credentials are checked before the build,
# which takes minutes, with the same lookup sam uses (boto3: env vars, profiles, SSO, IMDS).
DEPLOY_TOOLS := 'aws-sam-cli>=1.120'
SAM          ?= $(VENV)/bin/sam

$(VENV)/.deploy-tools: $(VENV)/.test-tools
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(DEPLOY_TOOLS)
	touch $@

deploy-tools: $(VENV)/.deploy-tools

deploy-credentials: $(VENV)/.test-tools
	@$(PY) -c 'import boto3, sys; sys.exit(boto3.Session().get_credentials() is None)' || { \
	  echo "deploy: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run 'aws configure' / 'aws sso login')" >&2; \
	  exit 1; }

# REGIONS="us-east-1 eu-west-1 ap-southeast-2": the first is the home region (forwarder, state
# table, alert topic), deployed first with Regions set; then each other region gets a member stack
# of the same name with the home stack's outputs (infra/deploy_regions.py; README, "Regions").
# Without REGIONS: one stack in samconfig's (or the guided deploy's) region, as before.
# DRY_RUN=1 with REGIONS prints the sam commands and calls nothing: no build, no credentials.
REGIONS   ?=
DRY_RUN   ?=
SAMCONFIG ?= infra/samconfig.toml
DEPLOY_REGIONS = $(PY) infra/deploy_regions.py --regions "$(REGIONS)" --config $(abspath $(SAMCONFIG)) --sam $(abspath $(SAM))

ifneq ($(strip $(REGIONS)),)
ifneq ($(strip $(DRY_RUN)),)
deploy: tools
	@$(DEPLOY_REGIONS) --dry-run
else
deploy: deploy-tools deploy-credentials
	$(MAKE) --no-print-directory build
	$(DEPLOY_REGIONS)
endif
else
deploy: deploy-tools deploy-credentials
	$(MAKE) --no-print-directory build
	cd infra && if [ -f samconfig.toml ]; then \
	  $(abspath $(SAM)) deploy --template-file template.yaml; \
	else \
	  $(abspath $(SAM)) deploy --template-file template.yaml --guided; \
	fi
endif

## validate: cfn-lint, no errors and no warnings, on the templates and the examples
validate: tools
	$(VENV)/bin/cfn-lint infra/template.yaml infra/check.yaml $(wildcard infra/examples/*.yaml)

## test-infra: SAM transform + least-privilege checks + stack creation in moto (loopback only); the
## tests read the plan from the synthetic CLI, hence bins
test-infra: tools bins
	$(PY) -m pytest infra/tests -q
