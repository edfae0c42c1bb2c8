"""Tests of infra/deploy_regions.py (`make deploy REGIONS=...`), with no AWS access: the region and
samconfig checks, the order and parameters of the sam commands, the home outputs read from a stack
in moto, and the Makefile's dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import deploy_regions as dr  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:synthetic/account-AbC123"
PD_SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:synthetic/pd-AbC123"
SAVED = {"TargetBaseUrl": "https://shop.example.com", "SyntheticAccountSecretArn": SECRET,
         "PagerDutySecretArn": PD_SECRET, "RunbookUrl": "https://runbooks.example.com", "EnvName": "prod"}
HOME = {"AlertTopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:synthetics-AlertTopic-X",
        "ForwarderFunctionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:synthetics-fwd",
        "AlertKeyArn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"}


def samconfig(tmp_path: Path, extra: str = "", overrides: dict[str, str] | None = None) -> Path:
    saved = " ".join(f'{k}=\\"{v}\\"' for k, v in (overrides or SAVED).items())
    path = tmp_path / "samconfig.toml"
    path.write_text(f'version = 0.1\n[default.deploy.parameters]\nstack_name = "synthetics"\n'
                    f'resolve_s3 = true\nparameter_overrides = "{saved}"\n{extra}')
    return path


def overrides_of(command: list[str]) -> dict[str, str]:
    tokens = command[command.index("--parameter-overrides") + 1:]
    return dict(t.split("=", 1) for t in tokens)


# ------------------------------------------------------------------------------- inputs
def test_regions_are_parsed_home_first():
    assert dr.parse_regions("us-east-1 eu-west-1  ap-southeast-2") == ["us-east-1", "eu-west-1", "ap-southeast-2"]
    assert dr.parse_regions("us-east-1,eu-west-1") == ["us-east-1", "eu-west-1"]
    assert dr.parse_regions("af-south-1") == ["af-south-1"]  # one opt-in region alone relays nothing


@pytest.mark.parametrize("text,reason", [
    ("", "empty"),
    ("us-east-1 eu-west", "not a region name: eu-west"),
    ("us-east-1 eu-west-1 us-east-1", "twice"),
    ("us-east-1 us-east-2 us-west-1 us-west-2 eu-west-1 eu-west-2 eu-west-3", "at most 6"),
    ("us-east-1 af-south-1", "af-south-1 is an opt-in region"),
    ("ap-east-1 us-east-1", "ap-east-1 is an opt-in region"),
])
def test_bad_regions_are_refused_with_the_reason(text, reason):
    with pytest.raises(dr.DeployError, match=reason):
        dr.parse_regions(text)


def test_saved_overrides_are_parsed_in_both_samconfig_forms():
    assert dr.parse_overrides('A="x y" B=https://h/p?q=1 C=""') == {"A": "x y", "B": "https://h/p?q=1", "C": ""}
    assert dr.parse_overrides(["A=1", "B=a=b"]) == {"A": "1", "B": "a=b"}
    with pytest.raises(dr.DeployError, match="expected Key=Value"):
        dr.parse_overrides("A=1 oops")


def test_samconfig_must_exist_and_let_sam_pick_a_bucket_per_region(tmp_path):
    with pytest.raises(dr.DeployError, match="run `make deploy` once without REGIONS"):
        dr.read_samconfig(tmp_path / "missing.toml")
    path = tmp_path / "bucket.toml"
    path.write_text('[default.deploy.parameters]\nstack_name = "s"\ns3_bucket = "my-artifacts"\n')
    with pytest.raises(dr.DeployError, match="resolve_s3 = true"):
        dr.read_samconfig(path)
    assert dr.read_samconfig(samconfig(tmp_path))["stack_name"] == "synthetics"


def test_member_parameters_use_the_home_outputs_and_the_secret_replica():
    home = dr.home_parameters(HOME, "us-east-1", "synthetics")
    member = dr.member_overrides({**SAVED, "Regions": "stale", "HomeAlertTopicArn": "stale"}, home, "eu-west-1")
    assert member["SyntheticAccountSecretArn"] == SECRET.replace(":us-east-1:", ":eu-west-1:")
    assert member["PagerDutySecretArn"] == PD_SECRET  # unused by a member stack
    assert (member["HomeAlertTopicArn"], member["HomeForwarderArn"], member["HomeAlertKeyArn"]) == \
        (HOME["AlertTopicArn"], HOME["ForwarderFunctionArn"], HOME["AlertKeyArn"])
    assert "Regions" not in member
    mrk = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    keyed = dr.member_overrides({**SAVED, "SyntheticAccountSecretKmsKeyArn": mrk}, home, "eu-west-1")
    assert keyed["SyntheticAccountSecretKmsKeyArn"] == mrk.replace(":us-east-1:", ":eu-west-1:")
    with pytest.raises(dr.DeployError, match="single-region key"):
        dr.member_overrides({**SAVED, "SyntheticAccountSecretKmsKeyArn": HOME["AlertKeyArn"]}, home, "eu-west-1")
    with pytest.raises(dr.DeployError, match="no output ForwarderFunctionArn"):
        dr.home_parameters({"AlertTopicArn": "x", "AlertKeyArn": "y"}, "us-east-1", "synthetics")


# ------------------------------------------------------------------------------- the flow
def test_home_is_deployed_first_then_each_member_with_its_outputs(tmp_path):
    config = samconfig(tmp_path)
    ran, asked = [], []

    def outputs(region, stack):
        asked.append((region, stack, len(ran)))
        return HOME

    commands = dr.deploy(["us-east-1", "eu-west-1", "ap-southeast-2"], config, "sam", False, ran.append, outputs)
    assert ran == commands and [c[c.index("--region") + 1] for c in ran] == ["us-east-1", "eu-west-1", "ap-southeast-2"]
    assert asked == [("us-east-1", "synthetics", 1)]  # read once, after the home deploy
    for command in ran:
        assert command[:2] == ["sam", "deploy"] and command[command.index("--stack-name") + 1] == "synthetics"
        assert command[command.index("--config-file") + 1] == str(config)
    home = overrides_of(ran[0])
    assert home == {**SAVED, "Regions": "us-east-1,eu-west-1,ap-southeast-2"}
    for command, region in zip(ran[1:], ["eu-west-1", "ap-southeast-2"]):
        member = overrides_of(command)
        assert member["HomeAlertTopicArn"] == HOME["AlertTopicArn"] and member["HomeForwarderArn"] == HOME["ForwarderFunctionArn"]
        assert member["HomeAlertKeyArn"] == HOME["AlertKeyArn"] and "Regions" not in member
        assert member["SyntheticAccountSecretArn"] == SECRET.replace("us-east-1", region)


def test_a_failed_home_deploy_deploys_no_member(tmp_path):
    def run(command):
        raise subprocess.CalledProcessError(1, command)

    with pytest.raises(subprocess.CalledProcessError):
        dr.deploy(["us-east-1", "eu-west-1"], samconfig(tmp_path), "sam", False, run,
                  lambda *_: pytest.fail("outputs read after a failed home deploy"))


def test_dry_run_calls_nothing(tmp_path):
    commands = dr.deploy(["us-east-1", "eu-west-1"], samconfig(tmp_path), "sam", True,
                         lambda c: pytest.fail(f"ran {c}"), lambda *_: pytest.fail("read outputs"))
    assert overrides_of(commands[1])["HomeAlertTopicArn"] == "<output AlertTopicArn of synthetics in us-east-1>"


# ------------------------------------------------------------------------------- NoEcho
PAGER_KEY = "0123456789abcdef0123456789abcdef"
PAGER_URL = f"https://events.pagerduty.com/integration/{PAGER_KEY}/enqueue"


def test_no_echo_parameters_are_read_from_the_template(tmp_path):
    assert dr.no_echo_parameters(dr.TEMPLATE) == {"OpsPagerDutyEndpointUrl"}
    template = tmp_path / "template.yaml"
    template.write_text("Parameters:\n  Plain: {Type: String}\n  Quoted: {Type: String, NoEcho: 'true'}\n"
                        "  Off: {Type: String, NoEcho: false}\nConditions:\n  C: !Equals [!Ref Plain, '']\n")
    assert dr.no_echo_parameters(template) == {"Quoted"}


def test_no_echo_values_are_never_printed(tmp_path, capsys):
    """Issue 20, item 17: the PagerDuty URL (it embeds the integration key) was printed in every
    echoed `sam deploy` line, in --dry-run and in the failure message."""
    config = samconfig(tmp_path, overrides={**SAVED, "OpsPagerDutyEndpointUrl": PAGER_URL})
    # what sam is given still carries it
    commands = dr.deploy(["us-east-1", "eu-west-1"], config, "sam", True, pytest.fail, pytest.fail)
    assert all(overrides_of(c)["OpsPagerDutyEndpointUrl"] == PAGER_URL for c in commands)

    assert dr.main(["--regions", "us-east-1 eu-west-1", "--config", str(config), "--dry-run"]) == 0
    # a real deploy whose sam fails: the echoed command, then the failure message
    assert dr.main(["--regions", "us-east-1 eu-west-1", "--config", str(config), "--sam", "false"]) == 1
    printed = capsys.readouterr()
    for text in (printed.out, printed.err):
        assert PAGER_KEY not in text and "OpsPagerDutyEndpointUrl=****" in text, text
    assert printed.out.count("OpsPagerDutyEndpointUrl=****") == 3, printed.out  # 2 dry-run lines, 1 echo
    assert "TargetBaseUrl=https://shop.example.com" in printed.out  # the rest is shown as it is


def test_a_malformed_saved_override_is_not_echoed():
    with pytest.raises(dr.DeployError) as refused:
        dr.parse_overrides(f"OpsPagerDutyEndpointUrl=https://x/{PAGER_KEY[:8]} {PAGER_KEY[8:]}")
    assert PAGER_KEY[8:] not in str(refused.value)
    assert "after OpsPagerDutyEndpointUrl" in str(refused.value)


@pytest.fixture
def moto_env(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield
    server.stop()


def test_home_outputs_are_read_from_the_home_region(moto_env):
    """stack_outputs asks CloudFormation of the home region (moto keeps regions apart)."""
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"AlertTopicArn": {"Value": {"Ref": "Topic"}},
                            "ForwarderFunctionArn": {"Value": HOME["ForwarderFunctionArn"]},
                            "AlertKeyArn": {"Value": HOME["AlertKeyArn"]}}}
    cf = boto3.client("cloudformation", region_name="eu-central-1")
    cf.create_stack(StackName="synthetics", TemplateBody=json.dumps(template))
    outputs = dr.stack_outputs("eu-central-1", "synthetics")
    assert outputs["AlertTopicArn"].startswith(f"arn:aws:sns:eu-central-1:{ACCOUNT}:")
    assert dr.home_parameters(outputs, "eu-central-1", "synthetics")["HomeForwarderArn"] == HOME["ForwarderFunctionArn"]
    with pytest.raises(Exception, match="does not exist"):
        dr.stack_outputs("us-west-2", "synthetics")


# ------------------------------------------------------------------------------- make
def make(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_make_deploy_regions_dry_run_prints_the_commands(tmp_path):
    config = samconfig(tmp_path)
    done = make("deploy", "REGIONS=us-east-1 eu-west-1 ap-southeast-2", "DRY_RUN=1", f"SAMCONFIG={config}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("(cd infra && ") for line in lines)
    assert [line.split("--region ")[1].split()[0] for line in lines] == ["us-east-1", "eu-west-1", "ap-southeast-2"]
    assert "Regions=us-east-1,eu-west-1,ap-southeast-2" in lines[0] and "HomeAlertTopicArn" not in lines[0]
    assert all("HomeForwarderArn=" in line for line in lines[1:])

    refused = make("deploy", "REGIONS=us-east-1 me-south-1", "DRY_RUN=1", f"SAMCONFIG={config}")
    assert refused.returncode != 0 and "me-south-1 is an opt-in region" in refused.stderr


def test_make_deploy_keeps_the_credential_check_before_the_build():
    for args in ([], ["REGIONS=us-east-1 eu-west-1"]):
        planned = make("-n", "deploy", *args)
        assert planned.returncode == 0, planned.stderr
        text = planned.stdout
        assert "get_credentials() is None" in text, args
        assert text.index("get_credentials() is None") < text.index("cargo lambda build"), args
    assert "deploy_regions.py" in make("-n", "deploy", "REGIONS=us-east-1 eu-west-1").stdout
    assert "deploy_regions.py" not in make("-n", "deploy").stdout
