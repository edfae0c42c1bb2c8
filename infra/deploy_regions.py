"""Multi-region deploy of infra/template.yaml: `make deploy REGIONS="us-east-1 eu-west-1 ..."`.

The first region is the home: its stack holds the alert topic, the forwarder and the state table,
and gets `Regions` (the forwarder's REGIONS). Every other region gets a member stack of the same
name, whose checks publish to the home topic and whose burn-rate alarms are relayed to the home
forwarder; it is deployed with the home stack's outputs (HomeAlertTopicArn, HomeForwarderArn,
HomeAlertKeyArn). infra/README.md, "Regions", explains the design.

The other parameters are those of infra/samconfig.toml (written by the first, guided `make deploy`),
because `sam deploy --parameter-overrides` replaces the saved overrides instead of adding to them.
In a member region the synthetic-account secret is its replica there (same ARN, that region).

--dry-run prints the sam commands and calls nothing (the home outputs are shown as placeholders).
Whatever it prints (--dry-run, the echo of each command, a failure) shows the value of a NoEcho
parameter of the template as ****: OpsPagerDutyEndpointUrl embeds the PagerDuty integration key.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Callable

INFRA = Path(__file__).resolve().parent
TEMPLATE = INFRA / "template.yaml"
MASK = "****"
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
MAX_REGIONS = 6  # the template grants the relay invoke permission to at most 5 member regions

# SNS opt-in regions (https://docs.aws.amazon.com/sns/latest/dg/sns-cross-region-delivery.html).
# SNS does not deliver from a default region to a Lambda function in an opt-in region, nor between
# two opt-in regions, and from an opt-in region it signs as sns.<region>.amazonaws.com
# (https://docs.aws.amazon.com/sns/latest/dg/lambda-prereq.html), which the home stack's relay
# permissions do not grant.
OPT_IN_REGIONS = {
    "af-south-1", "ap-east-1", "ap-south-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-7", "ap-northeast-3", "ca-west-1", "eu-south-1", "eu-south-2", "eu-central-2",
    "il-central-1", "me-south-1", "me-central-1", "mx-central-1",
}

HOME_OUTPUTS = {"HomeAlertTopicArn": "AlertTopicArn", "HomeForwarderArn": "ForwarderFunctionArn",
                "HomeAlertKeyArn": "AlertKeyArn"}
# Set by this script per region; a value saved in samconfig.toml for them is ignored.
MANAGED = {"Regions", *HOME_OUTPUTS}


class DeployError(Exception):
    """A deployment this script refuses to start, with the reason and what to do."""


def parse_regions(text: str) -> list[str]:
    regions = [r for r in re.split(r"[\s,]+", text) if r]
    if not regions:
        raise DeployError("REGIONS is empty")
    bad = [r for r in regions if not REGION_RE.fullmatch(r)]
    if bad:
        raise DeployError(f"REGIONS: not a region name: {', '.join(bad)}")
    if len(set(regions)) != len(regions):
        raise DeployError(f"REGIONS names a region twice: {' '.join(regions)}")
    if len(regions) > MAX_REGIONS:
        raise DeployError(f"REGIONS: at most {MAX_REGIONS} regions (the home and 5 members), got {len(regions)}")
    opt_in = [r for r in regions if r in OPT_IN_REGIONS]
    if opt_in and len(regions) > 1:
        raise DeployError(
            f"REGIONS: {', '.join(opt_in)} is an opt-in region; SNS cannot relay alarms between it and the "
            "other regions with this template's permissions (infra/README.md, \"Regions\")")
    return regions


def parse_overrides(value: str | list[str]) -> dict[str, str]:
    """samconfig's parameter_overrides, a string `Key="value" Key2=value2` or a list of `Key=value`.
    A malformed token is not echoed: it may be the rest of a secret value quoted wrong."""
    tokens = shlex.split(value) if isinstance(value, str) else list(value)
    out = {}
    for token in tokens:
        key, sep, val = token.partition("=")
        if not sep or not key:
            where = f"after {list(out)[-1]}" if out else "first"
            raise DeployError(f"samconfig parameter_overrides: expected Key=Value, got a token without a key ({where}); "
                              "a value with spaces needs quotes")
        out[key] = val
    return out


def no_echo_parameters(template: Path) -> set[str]:
    """The template's NoEcho parameters: their values are never printed."""
    import yaml  # the tools' venv has it (cfn-lint, moto)

    class Loader(yaml.SafeLoader):
        """Reads CloudFormation's short forms (!Ref, !Sub, ...) as nothing: only Parameters matter."""

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    document = yaml.load(template.read_text(), Loader=Loader) or {}
    parameters = document.get("Parameters") or {}
    return {name for name, spec in parameters.items()
            if isinstance(spec, dict) and str(spec.get("NoEcho", "false")).lower() == "true"}


def shown(command: list[str], secret: set[str]) -> str:
    """`command` as it may be printed: the value of each `Key=value` override of a NoEcho
    parameter is ****."""
    def mask(arg: str) -> str:
        key, sep, _ = arg.partition("=")
        return f"{key}={MASK}" if sep and key in secret else arg

    return shlex.join(mask(arg) for arg in command)


def read_samconfig(path: Path) -> dict[str, object]:
    if not path.exists():
        raise DeployError(
            f"{path} does not exist: run `make deploy` once without REGIONS in the home region (guided, it "
            "writes that file), then deploy the regions")
    config = tomllib.loads(path.read_text())
    params = config.get("default", {}).get("deploy", {}).get("parameters", {})
    global_params = config.get("default", {}).get("global", {}).get("parameters", {})
    merged = {**global_params, **params}
    if merged.get("s3_bucket") and not merged.get("resolve_s3"):
        raise DeployError(
            f"{path} names s3_bucket {merged['s3_bucket']!r}: a member region's code must come from a bucket in "
            "that region; set resolve_s3 = true instead (sam then uses a managed bucket per region)")
    if not merged.get("stack_name"):
        raise DeployError(f"{path} has no stack_name")
    return merged


def in_region(arn: str, region: str) -> str:
    parts = arn.split(":")
    return ":".join(parts[:3] + [region] + parts[4:])


def member_overrides(base: dict[str, str], home: dict[str, str], region: str) -> dict[str, str]:
    """A member region's parameters: the saved ones, the home outputs, and the synthetic account's
    secret as its replica in `region` (Secrets Manager keeps the ARN and changes the region)."""
    out = {k: v for k, v in base.items() if k not in MANAGED}
    secret = out.get("SyntheticAccountSecretArn")
    if secret:
        out["SyntheticAccountSecretArn"] = in_region(secret, region)
    key = out.get("SyntheticAccountSecretKmsKeyArn")
    if key:
        if "/mrk-" not in key:
            raise DeployError(
                "SyntheticAccountSecretKmsKeyArn is a single-region key: the secret's replica in "
                f"{region} cannot use it. Use a multi-region key (mrk-...) or aws/secretsmanager")
        out["SyntheticAccountSecretKmsKeyArn"] = in_region(key, region)
    return {**out, **home}


def sam_command(sam: str, config: Path, region: str, stack: str, overrides: dict[str, str]) -> list[str]:
    return [sam, "deploy", "--template-file", "template.yaml", "--config-file", str(config),
            "--region", region, "--stack-name", stack, "--no-fail-on-empty-changeset",
            "--parameter-overrides", *(f"{k}={v}" for k, v in overrides.items())]


def stack_outputs(region: str, stack: str) -> dict[str, str]:
    import boto3  # only a real deploy needs it

    described = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}


def home_parameters(outputs: dict[str, str], region: str, stack: str) -> dict[str, str]:
    missing = [out for out in HOME_OUTPUTS.values() if out not in outputs]
    if missing:
        raise DeployError(f"stack {stack} in {region} has no output {', '.join(missing)}: is it a home stack "
                          "(HomeAlertTopicArn empty) of this template?")
    return {param: outputs[out] for param, out in HOME_OUTPUTS.items()}


def deploy(regions: list[str], config_path: Path, sam: str, dry_run: bool,
           run: Callable[[list[str]], None], outputs: Callable[[str, str], dict[str, str]]) -> list[list[str]]:
    """Deploys home then members; returns the commands, in order."""
    config = read_samconfig(config_path)
    stack = str(config["stack_name"])
    base = parse_overrides(config.get("parameter_overrides", ""))
    home, members = regions[0], regions[1:]
    commands = []

    home_overrides = {**{k: v for k, v in base.items() if k not in MANAGED}, "Regions": ",".join(regions)}
    commands.append(sam_command(sam, config_path, home, stack, home_overrides))
    if not dry_run:
        run(commands[-1])
    if dry_run:
        home_params = {param: f"<output {out} of {stack} in {home}>" for param, out in HOME_OUTPUTS.items()}
    else:
        home_params = home_parameters(outputs(home, stack), home, stack)
    for region in members:
        commands.append(sam_command(sam, config_path, region, stack, member_overrides(base, home_params, region)))
        if not dry_run:
            run(commands[-1])
    return commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", required=True, help="home first, separated by spaces or commas")
    parser.add_argument("--config", type=Path, default=INFRA / "samconfig.toml")
    parser.add_argument("--sam", default="sam")
    parser.add_argument("--dry-run", action="store_true", help="print the sam commands, call nothing")
    args = parser.parse_args(argv)

    secret = no_echo_parameters(TEMPLATE)

    def run(command: list[str]) -> None:
        print("+ " + shown(command, secret), flush=True)
        subprocess.run(command, cwd=INFRA, check=True)

    try:
        regions = parse_regions(args.regions)
        commands = deploy(regions, args.config.resolve(), args.sam, args.dry_run, run, stack_outputs)
    except DeployError as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"deploy: {shown(e.cmd, secret)} failed with exit code {e.returncode}", file=sys.stderr)
        return 1
    if args.dry_run:
        for command in commands:
            print(f"(cd infra && {shown(command, secret)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
