"""Tests of infra/template.yaml, with no AWS access.

1. The SAM template is transformed locally with aws-sam-translator (the managed-policy loader is a
   stub that fails if called: the template must not rely on AWS managed policies).
2. Every policy document in the transformed template is checked for least privilege.
3. The transformed template is deployed into moto's CloudFormation, served on loopback, and the
   resources are looked up with boto3. Moto's CloudFormation skips resource types it does not
   implement (SNS subscriptions, SQS queue policies, Lambda event invoke configs, CloudWatch
   alarms); the test creates those itself through the matching API calls, after resolving their
   intrinsic functions against the stack, so their properties are still checked against the API.

Run: .venv/bin/python -m pytest infra/tests -q
"""

from __future__ import annotations

import copy
import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters
from moto.cloudformation.parsing import get_model_map
from moto.server import ThreadedMotoServer
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# Expected: moto reports each resource type it skips; provision() creates those.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse .* not supported by moto:UserWarning")

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
REGION = "us-east-1"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]  # a multi-region deployment, home first
# No real AWS: fake credentials, no profile files, and a region for the SAM translator's pseudo
# parameters.
os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_SESSION_TOKEN": "testing", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
os.environ.pop("AWS_PROFILE", None)
ACCOUNT = "123456789012"  # moto's default account
BUCKET = "artifacts"

REPO = Path(__file__).resolve().parents[2]
CHILD = TEMPLATE.parent / "check.yaml"
CHECKS_DIR = REPO / "checks"
# The plan comes from the CLI (make test builds it first): the one place a check's settings,
# its timeout among them, are worked out.
SYNTHETIC = REPO / "target" / "debug" / "synthetic"
# The packaged child template, as `sam package` would upload it.
CHILD_URL = f"https://s3.amazonaws.com/{BUCKET}/check.json"

LAMBDA_FIRST_RETRY_DELAY_S = 60  # invocation-async-error-handling.html: "a one-minute wait"

# Statements allowed to use Resource "*", keyed by action: the kind of resource whose policy may
# hold it, and the marker of the `# why:` comment in template.yaml that explains it.
KEY_POLICY_WHY = "why: key-policy-resource"
STAR_RESOURCE_ALLOWLIST: dict[str, tuple[str, str]] = {
    action: ("AWS::KMS::Key", KEY_POLICY_WHY)
    for action in [
        "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
        "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
        "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
        "kms:RotateKeyOnDemand", "kms:GenerateDataKey*", "kms:Decrypt",
    ]
}
# Resource types moto's CloudFormation does not create; this test creates them (see provision()).
PROVISIONED_BY_TEST = {
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::Subscription",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::CompositeAlarm",
}


# ---------------------------------------------------------------------------------- transform
class NoManagedPolicies:
    """ManagedPolicyLoader stand-in: no AWS call, and managed policies are not allowed anyway."""

    def load(self) -> dict[str, str]:
        raise AssertionError("the template asked SAM for AWS managed policies")


def load_sam(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml_parse(path.read_text())


def to_cloudformation(sam: dict[str, Any] | None = None, path: Path = TEMPLATE) -> dict[str, Any]:
    """SAM -> CloudFormation, with each local CodeUri and nested Location replaced by the S3
    location `sam package` would upload it to (s3://artifacts/<bin>.zip, CHILD_URL)."""
    sam = copy.deepcopy(sam or load_sam(path))
    for res in sam["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            code_uri = res["Properties"]["CodeUri"]
            binary = re.fullmatch(r"(?:\.\./)+target/lambda/([a-z-]+)/bootstrap\.zip", code_uri).group(1)
            res["Properties"]["CodeUri"] = f"s3://{BUCKET}/{binary}.zip"
        if res["Type"] == "AWS::Serverless::Application":
            assert res["Properties"]["Location"] == "check.yaml"
            res["Properties"]["Location"] = CHILD_URL
    return transform(sam, {}, NoManagedPolicies())


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return to_cloudformation()


@pytest.fixture(scope="module")
def child() -> dict[str, Any]:
    return to_cloudformation(path=CHILD)


def check_blocks(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """check name -> its nested-stack resource in the parent."""
    return {res["Properties"]["Parameters"]["CheckName"]: res for res in sam["Resources"].values()
            if res["Type"] == "AWS::Serverless::Application"}


CHECKS = sorted(check_blocks(load_sam()))
SECRET_CHECKS = {c for c, res in check_blocks(load_sam()).items()
                 if res["Properties"]["Parameters"]["ReadsAccountSecret"] == "true"}
BINARIES = ["check", "pagerduty-forwarder"]


def plan(checks: Path = CHECKS_DIR) -> dict[str, dict[str, Any]]:
    """`synthetic plan --format json` of a checks folder: check name -> its planned settings."""
    out = subprocess.run([str(SYNTHETIC), "plan", "--format", "json", "--checks", str(checks)],
                         check=True, capture_output=True, text=True).stdout
    return {c["name"]: c for c in json.loads(out)["checks"]}


def generated_template(tmp: Path, checks: Path) -> Path:
    """infra/ copied into `tmp` with its checks' part regenerated from `checks`, as `make plan` does."""
    infra = tmp / "infra"
    infra.mkdir()
    for name in ("template.yaml", "check.yaml"):
        (infra / name).write_text((TEMPLATE.parent / name).read_text())
    subprocess.run([str(SYNTHETIC), "plan", "--checks", str(checks), "--write-template", str(infra / "template.yaml")],
                   check=True, capture_output=True, text=True)
    return infra / "template.yaml"


# ------------------------------------------------------------------------- least privilege
def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Statements of a policy document; both branches of an Fn::If count."""
    out = []
    for st in as_list(doc.get("Statement", [])):
        if isinstance(st, dict) and "Fn::If" in st:
            out.extend(b for b in st["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"})
        else:
            out.append(st)
    return out


def policy_documents(template: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(logical id, resource type, kind, document) of every policy in a CloudFormation template.
    kind is "identity" for IAM policies and "resource" for resource policies."""
    docs = []
    for lid, res in template["Resources"].items():
        props, rtype = res.get("Properties", {}), res["Type"]
        if rtype == "AWS::IAM::Role":
            docs.append((lid, rtype, "trust", props["AssumeRolePolicyDocument"]))
            for pol in props.get("Policies", []):
                docs.append((lid, rtype, "identity", pol["PolicyDocument"]))
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs.append((lid, rtype, "identity", props["PolicyDocument"]))
        elif rtype == "AWS::KMS::Key":
            docs.append((lid, rtype, "resource", props["KeyPolicy"]))
        elif rtype in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy"):
            docs.append((lid, rtype, "resource", props["PolicyDocument"]))
    return docs


def least_privilege_violations(template: dict[str, Any]) -> list[str]:
    problems = []
    for lid, res in template["Resources"].items():
        # A managed policy hides its statements from review (AWSLambdaBasicExecutionRole has
        # logs:* on "*"); roles carry inline statements only.
        if res["Type"] == "AWS::IAM::Role" and res.get("Properties", {}).get("ManagedPolicyArns"):
            problems.append(f"{lid}: attaches managed policies {res['Properties']['ManagedPolicyArns']}")
    for lid, rtype, kind, doc in policy_documents(template):
        for st in statements(doc):
            where = f"{lid} ({kind}) {st.get('Sid', '')}".rstrip()
            for key in ("NotAction", "NotResource", "NotPrincipal"):
                if key in st and st.get("Effect") == "Allow":
                    problems.append(f"{where}: Allow with {key}")
            if st.get("Effect") != "Allow":
                continue
            actions = as_list(st.get("Action", []))
            for action in actions:
                if not isinstance(action, str) or action == "*" or re.fullmatch(r"[A-Za-z0-9-]+:\*", action):
                    problems.append(f"{where}: wildcard action {action!r}")
            if kind != "identity":
                principal = st.get("Principal")
                if principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS", []))):
                    problems.append(f"{where}: public principal")
            if kind == "trust":
                continue
            for resource in as_list(st.get("Resource", [])):
                literal = resource if isinstance(resource, str) else resource.get("Fn::Sub") if isinstance(resource, dict) else None
                if isinstance(literal, list):
                    literal = literal[0]
                if literal == "*":
                    for action in actions:
                        allowed = STAR_RESOURCE_ALLOWLIST.get(action)
                        if not allowed or allowed[0] != rtype:
                            problems.append(f"{where}: {action} on Resource '*' is not an allowlisted exception")
                elif isinstance(literal, str) and "*" in literal:
                    problems.append(f"{where}: wildcard in resource {literal!r}")
    return problems


def test_iam_is_least_privilege(cfn, child):
    assert least_privilege_violations(cfn) == []
    assert least_privilege_violations(child) == []


def test_least_privilege_check_can_fail(cfn, child):
    role = "Role"

    def with_statement(statement):
        broken = copy.deepcopy(child)
        broken["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(statement)
        return least_privilege_violations(broken)

    assert with_statement({"Effect": "Allow", "Action": "*", "Resource": {"Ref": "AlertTopicArn"}})
    assert with_statement({"Effect": "Allow", "Action": ["sns:*"], "Resource": {"Ref": "AlertTopicArn"}})
    assert with_statement({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"})
    # allowlisted for the key policy, not for a role
    assert with_statement({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"})
    assert with_statement({"Effect": "Allow", "Action": "logs:PutLogEvents",
                           "Resource": {"Fn::Sub": "arn:${AWS::Partition}:logs:*:*:*"}})
    assert with_statement({"Fn::If": ["ReadsSecret", {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
                                      {"Ref": "AWS::NoValue"}]})
    managed = copy.deepcopy(child)
    managed["Resources"][role]["Properties"]["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    assert least_privilege_violations(managed)
    public = copy.deepcopy(cfn)
    public["Resources"]["AlertDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Principal"] = "*"
    assert least_privilege_violations(public)


def test_each_star_resource_exception_is_explained_in_the_template():
    comments = [line.strip() for line in TEMPLATE.read_text().splitlines() if line.strip().startswith("#")]
    for action, (_, why) in STAR_RESOURCE_ALLOWLIST.items():
        assert any(c.startswith("# ") and why in c for c in comments), f"no '# {why}' comment for {action}"


def resolve_conditions(value: Any, conditions: dict[str, bool]) -> Any:
    """Statements as CloudFormation would see them once the given conditions are decided."""
    if isinstance(value, list):
        out = [resolve_conditions(v, conditions) for v in value]
        return [v for v in out if v != {"Ref": "AWS::NoValue"}]
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return resolve_conditions(yes if conditions[name] else no, conditions)
        return {k: resolve_conditions(v, conditions) for k, v in value.items()}
    return value


def resources_for(sts: list[dict[str, Any]], action: str) -> list[Any]:
    return [r for st in sts if action in as_list(st["Action"]) for r in as_list(st["Resource"])]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("secret_key", [False, True])
def test_each_check_reaches_only_its_own_log_group_topic_and_secret(child, check, secret_key):
    reads = check in SECRET_CHECKS
    conditions = {"ReadsSecret": reads, "HasSecretKey": reads and secret_key}
    role = child["Resources"]["Role"]["Properties"]
    sts = resolve_conditions(role["Policies"][0]["PolicyDocument"]["Statement"], conditions)
    assert resources_for(sts, "logs:PutLogEvents") == [{"Fn::GetAtt": ["LogGroup", "Arn"]}]
    assert resources_for(sts, "logs:CreateLogGroup") == []  # the stack creates the group
    assert resources_for(sts, "sns:Publish") == [{"Ref": "AlertTopicArn"}]
    assert resources_for(sts, "sqs:SendMessage") == [{"Ref": "CheckDeadLetterQueueArn"}]
    # a check that does not log in gets no secretsmanager permission at all
    assert resources_for(sts, "secretsmanager:GetSecretValue") == ([{"Ref": "SyntheticAccountSecretArn"}] if reads else [])
    assert not [st for st in sts if any(a.startswith("secretsmanager:") for a in as_list(st["Action"]))] or reads
    # the alert topic's key (the home region's, in a member stack) and this region's queue key
    alert_keys = [{"Ref": "AlertTopicKeyArn"}, {"Ref": "AlertKeyArn"}]
    assert resources_for(sts, "kms:GenerateDataKey*") == alert_keys
    decrypt = [r for r in resources_for(sts, "kms:Decrypt") if r not in alert_keys]
    assert decrypt == ([{"Ref": "SyntheticAccountSecretKmsKeyArn"}] if reads and secret_key else [])
    for st in sts:
        if st["Resource"] == {"Ref": "SyntheticAccountSecretKmsKeyArn"}:
            assert "kms:ViaService" in st["Condition"]["StringEquals"]


def forwarder_statements(cfn) -> list[dict[str, Any]]:
    role = cfn["Resources"]["PagerDutyForwarderFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    return statements(cfn["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"])


def test_forwarder_reaches_only_its_own_secret_log_group_table_and_notify_topic(cfn):
    fn = cfn["Resources"]["PagerDutyForwarderFunction"]["Properties"]
    sts = forwarder_statements(cfn)
    assert resources_for(sts, "logs:PutLogEvents") == [{"Fn::GetAtt": [fn["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}]
    assert resources_for(sts, "secretsmanager:GetSecretValue") == [{"Ref": "PagerDutySecretArn"}]
    # warnings to the human channels and the sweep's to operations: never the alert topic it reads
    assert resources_for(sts, "sns:Publish") == [{"Ref": "NotifyTopic"}, {"Ref": "OpsTopic"}]
    assert resources_for(sts, "kms:GenerateDataKey*") == [{"Fn::GetAtt": ["AlertKey", "Arn"]}]


def test_forwarder_has_exactly_the_spec_table_actions_on_the_table_only(cfn):
    """The incidents contract: GetItem, PutItem, UpdateItem, DeleteItem, Query on the table; no
    index, no Scan, no batch or transaction call, no other table."""
    dynamo = [st for st in forwarder_statements(cfn) if any(a.startswith("dynamodb:") for a in as_list(st["Action"]))]
    assert len(dynamo) == 1
    assert sorted(as_list(dynamo[0]["Action"])) == sorted(
        ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"])
    assert dynamo[0]["Resource"] == {"Fn::GetAtt": ["StateTable", "Arn"]}
    assert "Condition" not in dynamo[0]


def test_state_table_schema_pitr_and_ttl(cfn):
    table = cfn["Resources"]["StateTable"]
    assert table["Condition"] == "IsHome"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"},
                                             {"AttributeName": "sk", "AttributeType": "S"}]
    assert "GlobalSecondaryIndexes" not in props and "LocalSecondaryIndexes" not in props
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "ProvisionedThroughput" not in props
    assert cfn["Outputs"]["StateTableName"]["Value"] == {"Ref": "StateTable"}


# The forwarder's incident settings (the incidents contract), as template parameters where a team
# tunes them, with the contract's defaults.
FORWARDER_INCIDENT_ENV = {
    "STATE_TABLE": {"Ref": "StateTable"},
    "CHECK_ENV": {"Ref": "EnvName"},
    "SCHEDULE_RATE_MINUTES": {"Ref": "ScheduleRateMinutes"},
    "PAGE_AFTER_FAILED_RUNS": {"Ref": "PageAfterFailedRuns"},
    "RESOLVE_AFTER_PASSED_RUNS": {"Ref": "ResolveAfterPassedRuns"},
    "REGIONS": {"Fn::If": ["HasRegions", {"Ref": "Regions"}, {"Ref": "AWS::NoValue"}]},
    "REGION_QUORUM": {"Ref": "RegionQuorum"},
    "NOTIFY_TOPIC_ARN": {"Ref": "NotifyTopic"},
    "ALARM_NAME_PREFIX": {"Fn::Sub": "${AWS::StackName}-"},
}
SPEC_DEFAULTS = {"PageAfterFailedRuns": 2, "ResolveAfterPassedRuns": 1, "RegionQuorum": 2, "ScheduleRateMinutes": "5",
                 "Regions": ""}


def test_forwarder_gets_the_incident_settings_with_the_spec_defaults():
    sam = load_sam()
    env = sam["Resources"]["PagerDutyForwarderFunction"]["Properties"]["Environment"]["Variables"]
    assert {k: env[k] for k in FORWARDER_INCIDENT_ENV} == FORWARDER_INCIDENT_ENV
    for name, default in SPEC_DEFAULTS.items():
        assert sam["Parameters"][name]["Default"] == default, name
    # the burn rates are the forwarder's: the same SLO, and no burn-rate alarm left in a check
    assert env["SLO_TARGET_PERCENT"] == {"Ref": "SloTargetPercent"}
    child_alarm_names = {res["Properties"]["AlarmName"]["Fn::Sub"] for res in load_sam(CHILD)["Resources"].values()
                         if res["Type"].startswith("AWS::CloudWatch::")}
    assert child_alarm_names == {"${StackPrefix}-${CheckName}-failing"}
    # ALARM_NAME_PREFIX names the sweep's notifications like the checks' alarms: <StackPrefix>-<check>-...
    assert env["ALARM_NAME_PREFIX"] == {"Fn::Sub": "${AWS::StackName}-"}
    assert all(b["Properties"]["Parameters"]["StackPrefix"] == {"Ref": "AWS::StackName"}
               for b in check_blocks(sam).values())


def test_forwarder_timeout_covers_pagerduty_state_and_notify():
    """The Timeout comment's arithmetic, recomputed: 3 x 5 s + 1 + 2 s PagerDuty, ~2 s secret, 13
    DynamoDB calls x 2 s, one 4 s publish, under the Timeout with room for a cold start."""
    timeout = load_sam()["Resources"]["PagerDutyForwarderFunction"]["Properties"]["Timeout"]
    need = (3 * 5 + 1 + 2) + 2 + 13 * 2 + 4
    assert need == 50 and need + 5 <= timeout <= 60


# -------------------------------------------------------------------- functions and budgets
@pytest.mark.parametrize("check", CHECKS)
def test_each_block_carries_the_plans_settings(check):
    """TimeoutSeconds, the schedule, the secret and the journey's digest are the plan's (its
    timeout is the engine's worst case of the journey, the alert's reserve and a margin: shared
    monitor::timeout_seconds), within what the child accepts."""
    params = check_blocks(load_sam())[check]["Properties"]["Parameters"]
    planned = plan()[check]
    assert params["TimeoutSeconds"] == planned["timeout_seconds"]
    assert params["ScheduleRateMinutes"] == str(planned["schedule_minutes"])
    assert params["ReadsAccountSecret"] == str(planned["reads_account_secret"]).lower()
    assert params["JourneySha256"] == planned["journey_sha256"]
    child_max = load_sam(CHILD)["Parameters"]["TimeoutSeconds"]["MaxValue"]
    assert params["TimeoutSeconds"] <= child_max


@pytest.mark.parametrize("check", CHECKS)
def test_lambda_retry_can_happen_before_the_event_expires(check):
    """The retry starts ~60 s after a failed run that took up to Timeout; MaximumEventAgeInSeconds
    must leave room for that at every schedule, stay within Lambda's 60-21600 s, and not be
    shorter than one period."""
    sam_child = load_sam(CHILD)
    age = sam_child["Globals"]["Function"]["EventInvokeConfig"]["MaximumEventAgeInSeconds"]
    assert age == {"Fn::FindInMap": ["ScheduleRate", {"Ref": "ScheduleRateMinutes"}, "MaxEventAge"]}
    timeout = check_blocks(load_sam())[check]["Properties"]["Parameters"]["TimeoutSeconds"]
    rates = sam_child["Mappings"]["ScheduleRate"]
    assert sorted(rates, key=int) == load_sam()["Parameters"]["ScheduleRateMinutes"]["AllowedValues"]
    assert sorted(rates, key=int) == sam_child["Parameters"]["ScheduleRateMinutes"]["AllowedValues"]
    for minutes, row in rates.items():
        assert row["Seconds"] == int(minutes) * 60
        assert 60 <= row["MaxEventAge"] <= 21600
        assert row["MaxEventAge"] >= max(row["Seconds"], LAMBDA_FIRST_RETRY_DELAY_S + timeout + 30), (minutes, check)


def test_kms_service_statements_use_the_documented_form():
    """SNS/SQS developer guides ("compatibility between event sources from AWS services and
    encrypted topics/queues") grant the service principal without an aws:SourceAccount or
    aws:SourceArn condition; those keys are not sent with every service's KMS request."""
    key = load_sam()["Resources"]["AlertKey"]["Properties"]["KeyPolicy"]["Statement"]
    services = {s["Principal"]["Service"]: s for s in key if "Service" in s.get("Principal", {})}
    assert set(services) == {"cloudwatch.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com"}
    for service, st in services.items():
        assert sorted(as_list(st["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"], service
        condition_keys = {k for op in st.get("Condition", {}).values() for k in op}
        assert not condition_keys & {"aws:SourceAccount", "aws:SourceArn"}, service


def test_dead_letter_paths_are_watched(cfn, child):
    """The forwarder's AWS/Lambda DestinationDeliveryFailures; no alarm per check (issue 22): a
    check whose runs are lost, whatever the path, stops reporting, and the sweep raises it."""
    def alarms(template):
        return [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    forwarder = [a for a in alarms(cfn) if a.get("MetricName") == "DestinationDeliveryFailures"]
    assert [a["Dimensions"] for a in forwarder] == [[{"Name": "FunctionName", "Value": {"Ref": "PagerDutyForwarderFunction"}}]]
    assert [a["MetricName"] for a in alarms(child)] == ["Success"], "only the failing alarm is per check"
    assert {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms(cfn) if a.get("Namespace") == "AWS/SQS"} == \
        {"CheckDeadLetterQueue", "AlertDeadLetterQueue"}


def test_the_sweep_runs_on_a_schedule_and_is_watched(cfn):
    events = load_sam()["Resources"]["PagerDutyForwarderFunction"]["Properties"]["Events"]
    assert events["Sweep"]["Type"] == "Schedule" and "Input" not in events["Sweep"]["Properties"], \
        "the scheduled event itself: its time is the sweep's instant"
    source = (REPO / "functions" / "pagerduty-forwarder" / "src" / "sweep.rs").read_text()
    metric = re.search(r'pub const SWEEP_METRIC: &str = "(\w+)";', source).group(1)
    alarm = cfn["Resources"]["StoppedCheckSweepAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Namespace"]) == (metric, {"Ref": "MetricsNamespace"})
    assert alarm["Dimensions"] == [{"Name": "env", "Value": {"Ref": "EnvName"}}]
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == \
        ("SampleCount", "LessThanThreshold", 1, "breaching")
    assert alarm["AlarmActions"] == [{"Ref": "OpsTopic"}]
    env = load_sam()["Resources"]["PagerDutyForwarderFunction"]["Properties"]["Environment"]["Variables"]
    assert env["OPS_TOPIC_ARN"] == {"Ref": "OpsTopic"} and env["CHECK_PLAN_FILE"]


def test_every_metric_the_forwarder_counts_is_alarmed(cfn):
    """Each `*_METRIC` the forwarder emits (functions/pagerduty-forwarder/src/handler.rs) has an
    alarm on it, by env, in the forwarder's namespace, to the operations topic."""
    source = (REPO / "functions" / "pagerduty-forwarder" / "src" / "handler.rs").read_text()
    metrics = re.findall(r'pub const \w+_METRIC: &str = "(\w+)";', source)
    assert sorted(metrics) == ["IncidentStateUnavailable", "PagerDutyRejected", "PagerDutyStaleDropped"]
    alarms = {r["Properties"].get("MetricName"): r["Properties"] for r in cfn["Resources"].values()
              if r["Type"] == "AWS::CloudWatch::Alarm"}
    for metric in metrics:
        assert metric in alarms, f"nothing alarms on {metric}"
        alarm = alarms[metric]
        assert alarm["Namespace"] == {"Ref": "MetricsNamespace"}, metric
        assert alarm["Dimensions"] == [{"Name": "env", "Value": {"Ref": "EnvName"}}], metric
        assert alarm["AlarmActions"] == [{"Ref": "OpsTopic"}], metric
        assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == ("Sum", "GreaterThanOrEqualToThreshold", 1)
        assert alarm["TreatMissingData"] == "notBreaching", metric


FULL_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:synthetic/account-AbC123"
PARTIAL_ARNS = [
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:synthetic/account",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:synthetic/account-",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:synthetic/account-AbC12",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:synthetic/account-AbC123*",
    "synthetic/account",
]


@pytest.mark.parametrize("name", ["SyntheticAccountSecretArn", "PagerDutySecretArn"])
def test_secret_arn_parameters_require_the_full_arn(name):
    param = load_sam()["Parameters"][name]
    # CloudFormation matches AllowedPattern against the whole value (Java regex, same syntax here)
    assert re.fullmatch(param["AllowedPattern"], FULL_ARN)
    assert re.fullmatch(param["AllowedPattern"], "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:pd-key-x1Y2z3")
    for partial in PARTIAL_ARNS:
        assert not re.fullmatch(param["AllowedPattern"], partial), partial
    assert "6-character suffix" in param["ConstraintDescription"]


def test_functions_follow_the_contract(cfn, child):
    sam, sam_child = load_sam(), load_sam(CHILD)
    globals_ = sam_child["Globals"]["Function"]
    assert (globals_["Runtime"], globals_["Architectures"], globals_["Handler"], globals_["MemorySize"]) == \
           ("provided.al2023", ["arm64"], "bootstrap", 128)
    assert set(globals_["Environment"]["Variables"]) == {
        "CHECK_NAME", "CHECK_JOURNEY_SHA256", "TARGET_BASE_URL", "CHECK_ENV", "ALERT_TOPIC_ARN", "METRICS_NAMESPACE", "METRICS_DETAIL", "CREDENTIALS_SECRET_ID",
        "TARGET_OVERRIDE_ALLOWED_HOSTS", "TARGET_OVERRIDE_ALLOWED_ORIGINS", "TARGET_URLS", "TRACE_CONTEXT"}
    assert globals_["Environment"]["Variables"]["CREDENTIALS_SECRET_ID"]["Fn::If"][0] == "ReadsSecret"
    # one function in the child, the one check binary; CHECK_NAME selects the journey
    functions = [res for res in sam_child["Resources"].values() if res["Type"] == "AWS::Serverless::Function"]
    assert [f["Properties"]["CodeUri"] for f in functions] == ["../target/lambda/check/bootstrap.zip"]
    assert "Condition" not in functions[0]
    # each parent block: the same shared parameters as every other block
    blocks = check_blocks(sam)
    own = {"CheckName", "ReadsAccountSecret", "TimeoutSeconds", "ScheduleRateMinutes", "JourneySha256"}
    shared = [{k: v for k, v in b["Properties"]["Parameters"].items() if k not in own} for b in blocks.values()]
    assert all(s == shared[0] for s in shared)
    assert set(shared[0]) | own == set(sam_child["Parameters"])
    for block in blocks.values():
        assert "Condition" not in block, "the shipped checks run in every region"
    fwd = cfn["Resources"]["PagerDutyForwarderFunction"]["Properties"]
    assert (fwd["Runtime"], fwd["Architectures"], fwd["Handler"], fwd["MemorySize"]) == \
           ("provided.al2023", ["arm64"], "bootstrap", 128)
    assert set(sam["Resources"]["PagerDutyForwarderFunction"]["Properties"]["Environment"]["Variables"]) == {
        "PAGERDUTY_SECRET_ID", "PAGERDUTY_EVENTS_URL", "RUNBOOK_URL", "METRICS_NAMESPACE", "PAGERDUTY_CLIENT_URL",
        "TRACE_URL_TEMPLATE", "SLO_TARGET_PERCENT", "OPS_TOPIC_ARN", "CHECK_PLAN_FILE", *FORWARDER_INCIDENT_ENV}
    assert sam["Resources"]["PagerDutyForwarderFunction"]["Properties"]["CodeUri"] == \
           "../target/lambda/pagerduty-forwarder/bootstrap.zip"
    assert sam["Parameters"]["ScheduleRateMinutes"]["Default"] == "5"
    assert sam["Parameters"]["SloTargetPercent"]["Default"] == 99.5
    for name in ("SyntheticAccountSecretArn", "PagerDutySecretArn"):
        assert "Default" not in sam["Parameters"][name]
    assert sam["Parameters"]["OpsPagerDutyEndpointUrl"]["NoEcho"] is True


def test_every_enabled_check_file_has_a_block():
    """A check file without a nested stack would never run; a block without a file is a deleted
    check still deployed."""
    planned = plan()
    assert set(CHECKS) == {name for name, c in planned.items() if c["enabled"]}
    assert set(planned) == {p.stem for p in CHECKS_DIR.glob("*.toml")} - {"defaults"}


def test_people_get_the_notify_topic_and_the_forwarder_gets_every_alert(cfn):
    """A run no longer reaches people directly (one failed run is not an incident): the email
    subscribes to the forwarder's warnings. The forwarder takes every message of the alert topic."""
    props = cfn["Resources"]["AlertEmailSubscription"]["Properties"]
    assert props["TopicArn"] == {"Ref": "NotifyTopic"} and "FilterPolicy" not in props
    subs = [r["Properties"] for r in cfn["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"]
    on_alert_topic = [s for s in subs if s["TopicArn"] == {"Ref": "AlertTopic"}]
    assert len(on_alert_topic) == 1 and on_alert_topic[0]["Protocol"] == "lambda"
    assert "FilterPolicy" not in on_alert_topic[0]


def child_alarms(child) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in child["Resources"].items()
            if r["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")}


def test_failing_alarm_has_no_actions(child):
    """The forwarder's confirmation replaces it: notifying it too would be a second critical
    incident for one outage, through the ops integration."""
    props = child_alarms(child)["FailingAlarm"]["Properties"]
    for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
        assert not props.get(key), key


# ---------------------------------------------------------------------------------- regions
def test_member_stack_needs_its_home(cfn):
    """Rules refuse a member stack without the home forwarder or key."""
    rule = load_sam()["Rules"]["MemberStackNamesItsHome"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "HomeAlertTopicArn"}, ""]}]}
    asserted = {a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in rule["Assertions"]}
    assert asserted == {"HomeForwarderArn", "HomeAlertKeyArn"}
    assert cfn["Rules"] == load_sam()["Rules"]  # kept by the SAM transform


HOME_ONLY = {"AlertTopic", "NotifyTopic", "StateTable", "PagerDutyForwarderFunction", "PagerDutyForwarderRole",
             "PagerDutyForwarderLogGroup", "PagerDutyForwarderErrorsAlarm", "PagerDutyRejectedAlarm",
             "PagerDutyForwarderDestinationDeliveryFailuresAlarm", "IncidentStateUnavailableAlarm",
             "PagerDutyStaleDroppedAlarm"}
MEMBER_ONLY = {"AlarmRelayTopic", "AlarmRelaySubscription"}


def test_home_and_member_resources_are_split_by_condition(cfn):
    sam = load_sam()
    for lid in HOME_ONLY:
        assert sam["Resources"][lid]["Condition"] == "IsHome", lid
    for lid in MEMBER_ONLY:
        assert sam["Resources"][lid]["Condition"] == "IsMember", lid
    # what SAM generates from the forwarder carries its condition
    for lid, res in cfn["Resources"].items():
        if lid.startswith("PagerDutyForwarderFunction"):
            assert res.get("Condition") == "IsHome", lid
    relay = sam["Resources"]["AlarmRelaySubscription"]["Properties"]
    assert (relay["Protocol"], relay["Endpoint"]) == ("lambda", {"Ref": "HomeForwarderArn"})
    assert relay["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["AlertDeadLetterQueue", "Arn"]}}


def test_relay_invoke_permissions_name_one_member_region_each():
    """One permission per member region (Regions after the first, up to 5), for that region's
    relay topic of this stack name, from SNS in this account only."""
    sam = load_sam()
    perms = {lid: r for lid, r in sam["Resources"].items() if r["Type"] == "AWS::Lambda::Permission"}
    assert sorted(perms) == [f"RelayInvokePermission{i}" for i in range(1, 6)]
    split = {"Fn::Split": [",", {"Fn::Sub": "${Regions},,,,,"}]}
    for i in range(1, 6):
        perm = perms[f"RelayInvokePermission{i}"]
        props = perm["Properties"]
        assert (props["Principal"], props["Action"], props["SourceAccount"]) == \
            ("sns.amazonaws.com", "lambda:InvokeFunction", {"Ref": "AWS::AccountId"})
        assert props["FunctionName"] == {"Fn::GetAtt": ["PagerDutyForwarderFunction", "Arn"]}
        assert props["SourceArn"] == {"Fn::Sub": [
            "arn:${AWS::Partition}:sns:${Member}:${AWS::AccountId}:${AWS::StackName}-alarm-relay",
            {"Member": {"Fn::Select": [i, split]}}]}
        assert sam["Conditions"][perm["Condition"]] == {"Fn::And": [{"Condition": "IsHome"}, {"Fn::Not": [
            {"Fn::Equals": [{"Fn::Select": [i, split]}, ""]}]}]}
    assert sam["Resources"]["AlarmRelayTopic"]["Properties"]["TopicName"] == {"Fn::Sub": "${AWS::StackName}-alarm-relay"}
    pattern = sam["Parameters"]["Regions"]["AllowedPattern"]
    assert re.fullmatch(pattern, "us-east-1,eu-west-1,ap-southeast-2") and re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, ",".join(["us-east-1"] * 6)) and not re.fullmatch(pattern, ",".join(["us-east-1"] * 7))
    assert not re.fullmatch(pattern, "us-east-1, eu-west-1")


# ------------------------------------------------------------------------------------- moto
@pytest.fixture(scope="session")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def aws(moto_endpoint):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            aws_session_token="testing", region_name=REGION)

    def client(service):
        return session.client(service, endpoint_url=moto_endpoint)

    clients = {s: client(s) for s in ("cloudformation", "s3", "secretsmanager", "lambda", "events", "sns",
                                      "sqs", "cloudwatch", "kms", "iam", "logs", "dynamodb")}
    s3 = clients["s3"]
    s3.create_bucket(Bucket=BUCKET)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bootstrap", "#!/bin/sh\n")
    for binary in BINARIES:
        s3.put_object(Bucket=BUCKET, Key=f"{binary}.zip", Body=buf.getvalue())
    # what `sam package` uploads for Location: check.yaml; moto creates the nested stacks from it
    s3.put_object(Bucket=BUCKET, Key="check.json", Body=json.dumps(to_cloudformation(path=CHILD)))
    sm = clients["secretsmanager"]
    clients["secrets"] = {
        "synthetic": sm.create_secret(Name="synthetic/account",
                                      SecretString=json.dumps({"email": "e", "password": "p", "payment_token": "t"}))["ARN"],
        "pagerduty": sm.create_secret(Name="synthetic/pagerduty", SecretString="routing-key")["ARN"],
    }
    return clients


class Stack:
    """Intrinsic-function resolver over a stack created in moto, used to create the resource types
    moto's CloudFormation skips."""

    def __init__(self, aws, template, name, params):
        self.aws, self.template, self.name = aws, template, name
        self.params = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
        self.params.update(params)
        self.physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId")
                         for r in aws["cloudformation"].describe_stack_resources(StackName=name)["StackResources"]
                         if "LogicalResourceId" in r}  # moto lists the types it skipped without ids
        self.types = {lid: r["Type"] for lid, r in template["Resources"].items()}
        self.created: dict[str, list[str]] = {}
        self.props: dict[str, dict[str, Any]] = {}  # what this test created, as resolved

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def ref(self, name: str) -> Any:
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::StackName": self.name, "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        return self.physical[name]

    def get_att(self, lid: str, attr: str) -> str:
        rtype, phys = self.types[lid], self.physical[lid]
        if rtype == "AWS::SQS::Queue":
            return {"Arn": self.aws["sqs"].get_queue_attributes(QueueUrl=phys, AttributeNames=["QueueArn"])
                    ["Attributes"]["QueueArn"], "QueueName": phys.rsplit("/", 1)[-1], "QueueUrl": phys}[attr]
        if rtype == "AWS::Lambda::Function" and attr == "Arn":
            return self.aws["lambda"].get_function(FunctionName=phys)["Configuration"]["FunctionArn"]
        if rtype == "AWS::Events::Rule" and attr == "Arn":
            return self.aws["events"].describe_rule(Name=phys)["Arn"]
        if rtype == "AWS::DynamoDB::Table" and attr == "Arn":
            return self.aws["dynamodb"].describe_table(TableName=phys)["Table"]["TableArn"]
        if rtype == "AWS::SNS::Topic" and attr == "TopicName":
            return phys.rsplit(":", 1)[-1]
        if rtype == "AWS::KMS::Key" and attr == "Arn":
            # (moto's DescribeKey fails on a key whose policy CloudFormation stored as an object)
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{phys}"
        raise KeyError(f"GetAtt {lid}.{attr} ({rtype}) is not known to this test")

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if fn == "Fn::GetAtt":
                return self.get_att(*arg)
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, variables)
            if fn == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::FindInMap":
                m, k1, k2 = (self.resolve(a) for a in arg)
                return self.template["Mappings"][m][k1][k2]
            if fn == "Fn::Join":
                return self.resolve(arg[0]).join(str(x) for x in self.resolve(arg[1]))
            if fn == "Fn::Split":
                return self.resolve(arg[1]).split(self.resolve(arg[0]))
            if fn == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if fn == "Fn::Equals":
                a, b = self.resolve(arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::Or":
                return any(self.resolve(arg))
            if fn == "Fn::And":
                return all(self.resolve(arg))
            if fn == "Condition":
                return self.condition(arg)
            assert not fn.startswith("Fn::"), f"{fn} is not known to this test"
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not NO_VALUE}

    def provision(self) -> None:
        self.children: dict[str, Stack] = {}
        for lid, res in self.template["Resources"].items():
            if res["Type"] == "AWS::CloudFormation::Stack" and lid in self.physical:
                child = Stack(self.aws, to_cloudformation(path=CHILD), self.physical[lid],
                              {k: str(v) for k, v in self.resolve(res["Properties"]["Parameters"]).items()})
                child.provision()
                self.children[res["Properties"]["Parameters"]["CheckName"]] = child
        for rtype in ("AWS::SQS::QueuePolicy", "AWS::SNS::Subscription", "AWS::Lambda::EventInvokeConfig",
                      "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
            for lid, res in self.template["Resources"].items():
                if res["Type"] != rtype or ("Condition" in res and not self.condition(res["Condition"])):
                    continue
                props = self.resolve(res["Properties"])
                self.physical[lid] = self._create(rtype, props)
                self.props[lid] = props
                self.created.setdefault(rtype, []).append(lid)

    def _create(self, rtype: str, props: dict[str, Any]) -> str:
        aws = self.aws
        if rtype == "AWS::SQS::QueuePolicy":
            for url in props["Queues"]:
                aws["sqs"].set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
            return props["Queues"][0]
        if rtype == "AWS::SNS::Subscription":
            attributes = {k: json.dumps(props[k]) for k in ("FilterPolicy", "RedrivePolicy") if k in props}
            if "FilterPolicyScope" in props:
                attributes["FilterPolicyScope"] = props["FilterPolicyScope"]
            return aws["sns"].subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"],
                                        Attributes=attributes, ReturnSubscriptionArn=True)["SubscriptionArn"]
        if rtype == "AWS::Lambda::EventInvokeConfig":
            aws["lambda"].put_function_event_invoke_config(**props)
            return props["FunctionName"]
        if rtype == "AWS::CloudWatch::Alarm":
            aws["cloudwatch"].put_metric_alarm(**props)
            return props["AlarmName"]
        # moto 5 has no PutCompositeAlarm: check the request against the CloudWatch API model, and
        # that its rule names alarms that exist.
        model = botocore.session.get_session().get_service_model("cloudwatch")
        validate_parameters(props, model.operation_model("PutCompositeAlarm").input_shape)
        existing = {a["AlarmName"] for a in aws["cloudwatch"].describe_alarms(MaxRecords=100)["MetricAlarms"]}
        named = set(re.findall(r'ALARM\("([^"]+)"\)', props["AlarmRule"]))
        assert named and named <= existing, (props["AlarmName"], named - existing)
        return props["AlarmName"]


NO_VALUE = object()


def deploy(aws, template, name, params) -> Stack:
    cf = aws["cloudformation"]
    # moto names a nested stack after its logical id, so the previous test's would collide
    for lid, res in template["Resources"].items():
        if res["Type"] == "AWS::CloudFormation::Stack":
            cf.delete_stack(StackName=lid)
    cf.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"],
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    status = cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE", cf.describe_stack_events(StackName=name)["StackEvents"][:5]
    stack = Stack(aws, template, name, params)
    stack.provision()
    return stack


def base_params(aws) -> dict[str, str]:
    return {
        "TargetBaseUrl": "https://shop.example.test",
        "RunbookUrl": "https://runbooks.example.test/synthetics",
        "SyntheticAccountSecretArn": aws["secrets"]["synthetic"],
        "PagerDutySecretArn": aws["secrets"]["pagerduty"],
    }


def function(aws, name) -> dict[str, Any]:
    return aws["lambda"].get_function(FunctionName=name)["Configuration"]


def test_stack_creates_in_moto(aws, cfn):
    skipped = {r["Type"] for t in (cfn, to_cloudformation(path=CHILD)) for r in t["Resources"].values()}
    skipped -= set(get_model_map()) | PROVISIONED_BY_TEST
    assert skipped == set(), "resource types neither moto nor this test creates"

    params = {**base_params(aws), "AlarmEmail": "oncall@example.test", "Regions": ",".join(REGIONS),
              "FailingAlarms": "true",
              "OpsPagerDutyEndpointUrl": "https://events.pagerduty.example.test/integration/x/enqueue",
              "SyntheticAccountSecretKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
    stack = deploy(aws, cfn, "synthetics-full", params)
    alert_topic, ops_topic = stack.physical["AlertTopic"], stack.physical["OpsTopic"]
    notify_topic = stack.physical["NotifyTopic"]
    check_dlq_arn = stack.get_att("CheckDeadLetterQueue", "Arn")
    assert set(stack.children) == set(CHECKS)
    assert "AlarmRelayTopic" not in stack.physical  # a home stack relays nothing

    for check, child in stack.children.items():
        fn = function(aws, f"synthetics-full-check-{check}")
        assert (fn["Runtime"], fn["Handler"], fn["MemorySize"]) == ("provided.al2023", "bootstrap", 128)
        assert fn["Timeout"] == check_blocks(load_sam())[check]["Properties"]["Parameters"]["TimeoutSeconds"]
        assert fn["Role"] == child.aws["iam"].get_role(RoleName=child.physical["Role"])["Role"]["Arn"]
        env = fn["Environment"]["Variables"]
        assert env["ALERT_TOPIC_ARN"] == alert_topic and env["CHECK_ENV"] == "prod"
        assert env["METRICS_NAMESPACE"] == "SyntheticMonitoring"
        assert "TARGET_OVERRIDE_ALLOWED_HOSTS" not in env and "TARGET_URLS" not in env
        assert env["TRACE_CONTEXT"] == "on"
        assert env.get("CREDENTIALS_SECRET_ID") == (aws["secrets"]["synthetic"] if check in SECRET_CHECKS else None)
        # the role as created: GetSecretValue only for the checks that log in
        policy = aws["iam"].get_role_policy(RoleName=child.physical["Role"], PolicyName=f"{check}-check")
        doc = policy["PolicyDocument"]
        # moto hands back what CloudFormation gave it, a Python repr here: read the actions off the text
        actions = set(re.findall(r"[a-z0-9-]+:[A-Za-z*]+", str(doc)))
        assert ("secretsmanager:GetSecretValue" in actions) == (check in SECRET_CHECKS)
        invoke = aws["lambda"].get_function_event_invoke_config(FunctionName=fn["FunctionName"])
        assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == check_dlq_arn
        assert invoke["MaximumRetryAttempts"] == 1 and invoke["MaximumEventAgeInSeconds"] == 300
        rule = aws["events"].describe_rule(Name=f"synthetics-full-check-{check}")
        assert rule["ScheduleExpression"] == "rate(5 minutes)"
        (target,) = aws["events"].list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == fn["FunctionArn"]
        assert target["DeadLetterConfig"]["Arn"] == check_dlq_arn
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2

    forwarder = function(aws, stack.physical["PagerDutyForwarderFunction"])
    env = forwarder["Environment"]["Variables"]
    assert env["PAGERDUTY_SECRET_ID"] == aws["secrets"]["pagerduty"]
    assert env["PAGERDUTY_CLIENT_URL"].endswith(f"#dashboards:name={stack.physical['Dashboard']}")
    table = stack.physical["StateTable"]
    # (moto keeps Number parameters as numbers; Lambda gets strings)
    assert {k: str(env[k]) for k in ("STATE_TABLE", "CHECK_ENV", "REGIONS", "REGION_QUORUM", "SCHEDULE_RATE_MINUTES",
                                "NOTIFY_TOPIC_ARN", "ALARM_NAME_PREFIX", "PAGE_AFTER_FAILED_RUNS",
                                "RESOLVE_AFTER_PASSED_RUNS")} == {
        "STATE_TABLE": table, "CHECK_ENV": "prod", "REGIONS": ",".join(REGIONS), "REGION_QUORUM": "2",
        "SCHEDULE_RATE_MINUTES": "5", "NOTIFY_TOPIC_ARN": notify_topic, "ALARM_NAME_PREFIX": "synthetics-full-",
        "PAGE_AFTER_FAILED_RUNS": "2", "RESOLVE_AFTER_PASSED_RUNS": "1"}
    assert forwarder["Timeout"] == 60
    # the table as created, keyed pk/sk, on demand (moto's CloudFormation does not apply TTL or
    # PITR: test_state_table_schema_pitr_and_ttl checks those properties)
    described = aws["dynamodb"].describe_table(TableName=table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               aws["cloudformation"].describe_stacks(StackName="synthetics-full")["Stacks"][0]["Outputs"]}
    assert outputs["StateTableName"] == table and outputs["ForwarderFunctionArn"] == forwarder["FunctionArn"]
    assert outputs["AlertTopicArn"] == alert_topic and "AlarmRelayTopicArn" not in outputs
    # the relays of the member regions (not the home region) may invoke the forwarder
    policy = json.loads(aws["lambda"].get_policy(FunctionName=forwarder["FunctionName"])["Policy"])
    relays = {st["Condition"]["ArnLike"]["AWS:SourceArn"] for st in policy["Statement"]
              if st["Principal"] == {"Service": "sns.amazonaws.com"} and "ArnLike" in st.get("Condition", {})}
    assert relays >= {f"arn:aws:sns:{r}:{ACCOUNT}:synthetics-full-alarm-relay" for r in REGIONS[1:]}
    assert f"arn:aws:sns:{REGIONS[0]}:{ACCOUNT}:synthetics-full-alarm-relay" not in relays
    assert sum(1 for lid in stack.physical if lid.startswith("RelayInvokePermission")) == len(REGIONS) - 1

    # the forwarder takes every message of the alert topic; people get its warnings
    subs = aws["sns"].list_subscriptions_by_topic(TopicArn=alert_topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("lambda", forwarder["FunctionArn"])]
    attrs = aws["sns"].get_subscription_attributes(SubscriptionArn=subs[0]["SubscriptionArn"])["Attributes"]
    assert "FilterPolicy" not in attrs
    notify_subs = aws["sns"].list_subscriptions_by_topic(TopicArn=notify_topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in notify_subs] == [("email", "oncall@example.test")]
    assert sorted(s["Protocol"] for s in aws["sns"].list_subscriptions_by_topic(TopicArn=ops_topic)["Subscriptions"]) \
        == ["email", "https"]

    # the check DLQ admits this stack's check rules, by the name prefix every check rule has
    check_policy = json.loads(aws["sqs"].get_queue_attributes(
        QueueUrl=stack.physical["CheckDeadLetterQueue"], AttributeNames=["Policy"])["Attributes"]["Policy"])
    pattern = check_policy["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"]
    for check in CHECKS:
        assert fnmatch.fnmatchcase(aws["events"].describe_rule(Name=f"synthetics-full-check-{check}")["Arn"], pattern)
    assert not fnmatch.fnmatchcase(f"arn:aws:events:{REGION}:{ACCOUNT}:rule/other-stack-check-x", pattern)

    # alarms: per check only the failing alarm, and only with FailingAlarms=true (no actions: the
    # forwarder pages, its burn rates and sweep replaced the rest); shared: forwarder errors and DLQ delivery, PagerDuty
    # rejections, stale drops, incident state unavailable, the sweep, 2 DLQ depth
    alarms = {a["AlarmName"]: a for a in aws["cloudwatch"].describe_alarms(
        AlarmNamePrefix="synthetics-full-", MaxRecords=100)["MetricAlarms"]}
    assert len(alarms) == len(CHECKS) * 1 + 8
    assert sum(len(c.created.get("AWS::CloudWatch::CompositeAlarm", [])) for c in stack.children.values()) == 0
    for name, alarm in alarms.items():
        if name.endswith("-failing"):
            assert alarm["AlarmActions"] == [] and alarm["OKActions"] == [], name
        else:
            assert alarm["AlarmActions"] == [ops_topic] and alarm["OKActions"] == [ops_topic], name
    sweep = alarms["synthetics-full-stopped-check-sweep-not-running"]
    assert (sweep["MetricName"], sweep["TreatMissingData"]) == ("StoppedCheckSweeps", "breaching")
    dashboard = aws["cloudwatch"].get_dashboard(DashboardName=stack.physical["Dashboard"])
    titles = [w["properties"].get("title", "") for w in json.loads(dashboard["DashboardBody"])["widgets"]]
    assert {"Success rate per check (%)", "Lambda errors per function (the monitors themselves)"} <= set(titles)
    queries = [w["properties"]["query"] for w in json.loads(dashboard["DashboardBody"])["widgets"] if w["type"] == "log"]
    assert len(queries) == 2 and all("logGroups(namePrefix: ['/aws/lambda/synthetics-full-check-'])" in q for q in queries)


def test_disabled_check_and_no_optional_channels(aws, tmp_path):
    # the checks folder with payment disabled and every check at 1 minute, through `make plan`
    checks = tmp_path / "checks"
    shutil.copytree(CHECKS_DIR, checks)
    payment = checks / "payment.toml"
    payment.write_text(payment.read_text().replace("[deploy]\n", "[deploy]\nenabled = false\n", 1))
    defaults = checks / "defaults.toml"
    defaults.write_text(defaults.read_text().replace("schedule_minutes = 5", "schedule_minutes = 1"))
    cfn = to_cloudformation(path=generated_template(tmp_path, checks))
    params = {**base_params(aws), "ScheduleRateMinutes": "1"}
    stack = deploy(aws, cfn, "synthetics-lean", params)
    assert set(stack.children) == set(CHECKS) - {"payment"}
    names = {f["FunctionName"] for page in aws["lambda"].get_paginator("list_functions").paginate() for f in page["Functions"]}
    assert "synthetics-lean-check-payment" not in names and "synthetics-lean-check-search" in names
    assert aws["events"].describe_rule(Name="synthetics-lean-check-health")["ScheduleExpression"] == "rate(1 minute)"
    # at rate(1 minute) Lambda's retry (about a minute after a failed run) still fits
    invoke = aws["lambda"].get_function_event_invoke_config(FunctionName="synthetics-lean-check-products")
    assert invoke["MaximumEventAgeInSeconds"] == 300
    alarms = aws["cloudwatch"].describe_alarms(AlarmNamePrefix="synthetics-lean-", MaxRecords=100)["MetricAlarms"]
    assert len(alarms) == 8  # FailingAlarms defaults to false: no alarm per check
    assert not [a for a in alarms if a["AlarmName"].endswith("-failing")]
    subs = aws["sns"].list_subscriptions_by_topic(TopicArn=stack.physical["AlertTopic"])["Subscriptions"]
    assert [s["Protocol"] for s in subs] == ["lambda"]
    assert aws["sns"].list_subscriptions_by_topic(TopicArn=stack.physical["OpsTopic"])["Subscriptions"] == []
    assert aws["sns"].list_subscriptions_by_topic(TopicArn=stack.physical["NotifyTopic"])["Subscriptions"] == []
    # one region: no REGIONS for the forwarder, no relay permission
    forwarder = function(aws, stack.physical["PagerDutyForwarderFunction"])
    assert "REGIONS" not in forwarder["Environment"]["Variables"]
    assert not [lid for lid in stack.physical if lid.startswith("RelayInvokePermission")]


def test_member_stack_has_no_forwarder_and_publishes_home(aws, cfn):
    """HomeAlertTopicArn set: no forwarder, table, alert or notify topic; the checks publish to
    the home topic with the home key, and the burn-rate alarms go to a relay topic subscribed to
    the home forwarder."""
    home_topic = f"arn:aws:sns:{REGIONS[0]}:{ACCOUNT}:synthetics-home-AlertTopic"
    home_forwarder = f"arn:aws:lambda:{REGIONS[0]}:{ACCOUNT}:function:synthetics-home-forwarder"
    home_key = f"arn:aws:kms:{REGIONS[0]}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    tables_before = set(aws["dynamodb"].list_tables()["TableNames"])
    params = {**base_params(aws), "HomeAlertTopicArn": home_topic, "HomeForwarderArn": home_forwarder,
              "HomeAlertKeyArn": home_key, "AlarmEmail": "oncall@example.test"}
    stack = deploy(aws, cfn, "synthetics-member", params)
    resources = set(stack.physical)
    assert not resources & HOME_ONLY
    assert not [lid for lid in resources if lid.startswith(("PagerDutyForwarder", "RelayInvokePermission"))]
    assert set(aws["dynamodb"].list_tables()["TableNames"]) == tables_before
    names = {f["FunctionName"] for page in aws["lambda"].get_paginator("list_functions").paginate() for f in page["Functions"]}
    assert not [n for n in names if n.startswith("synthetics-member-") and "check" not in n]
    assert set(stack.children) == set(CHECKS)

    relay = stack.physical["AlarmRelayTopic"]
    assert relay == f"arn:aws:sns:{REGION}:{ACCOUNT}:synthetics-member-alarm-relay"
    (sub,) = aws["sns"].list_subscriptions_by_topic(TopicArn=relay)["Subscriptions"]
    assert (sub["Protocol"], sub["Endpoint"]) == ("lambda", home_forwarder)
    attrs = aws["sns"].get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": stack.get_att("AlertDeadLetterQueue", "Arn")}
    dlq_policy = json.loads(aws["sqs"].get_queue_attributes(
        QueueUrl=stack.physical["AlertDeadLetterQueue"], AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert dlq_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == relay
    # the email gets this region's ops alarms (there is no notify topic here)
    assert [s["Protocol"] for s in aws["sns"].list_subscriptions_by_topic(
        TopicArn=stack.physical["OpsTopic"])["Subscriptions"]] == ["email"]

    for check, child in stack.children.items():
        env = function(aws, f"synthetics-member-check-{check}")["Environment"]["Variables"]
        assert env["ALERT_TOPIC_ARN"] == home_topic
        doc = str(aws["iam"].get_role_policy(RoleName=child.physical["Role"], PolicyName=f"{check}-check")["PolicyDocument"])
        assert home_topic in doc and home_key in doc
        assert stack.get_att("AlertKey", "Arn") in doc  # its own DLQ's key
    alarms = {a["AlarmName"] for a in aws["cloudwatch"].describe_alarms(
        AlarmNamePrefix="synthetics-member-", MaxRecords=100)["MetricAlarms"]}
    # no alarm per check (FailingAlarms defaults to false); shared: the two DLQ depths (the
    # forwarder's and the sweep's alarms live at home; the home sweep watches every region's runs)
    assert alarms == {"synthetics-member-alert-dlq-not-empty", "synthetics-member-check-dlq-not-empty"}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               aws["cloudformation"].describe_stacks(StackName="synthetics-member")["Stacks"][0]["Outputs"]}
    assert outputs["AlarmRelayTopicArn"] == relay
    assert not {"AlertTopicArn", "ForwarderFunctionArn", "StateTableName", "NotifyTopicArn"} & set(outputs)
