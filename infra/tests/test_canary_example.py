"""Tests of infra/examples/canary-deploy.yaml, with no AWS access.

CodeDeploy runs the canary gate before and after the traffic shift, the check's failing alarm and
the gate's own errors roll the deployment back, the gate compares the new code with the live alias,
and every role is least privilege. The template is transformed with aws-sam-translator exactly as
infra/template.yaml is (and `make validate` runs cfn-lint on it); moto's CloudFormation has no
CodeDeploy, so it is not deployed.

Run: .venv/bin/python -m pytest infra/tests -q
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from test_template import CHILD, REPO, as_list, least_privilege_violations, load_sam, statements, to_cloudformation

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "canary-deploy.yaml"
GATE_SOURCES = [REPO / "functions" / "canary-gate" / "src" / "config.rs", REPO / "shared" / "src" / "config.rs"]
# HOOK_REPORT_ATTEMPTS x 5 s + the backoffs, at the defaults (functions/canary-gate/src/config.rs).
REPORT_BUDGET_S = 37
LAMBDA_MAX_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return to_cloudformation(path=EXAMPLE)


def only(cfn: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = [res for res in cfn["Resources"].values() if res["Type"] == rtype]
    assert len(found) == 1, f"{len(found)} {rtype}"
    return found[0]


def role_statements(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [st for pol in cfn["Resources"][role]["Properties"]["Policies"] for st in statements(pol["PolicyDocument"])]


def resources_of(cfn: dict[str, Any], role: str, action: str) -> list[Any]:
    return [r for st in role_statements(cfn, role) if action in as_list(st["Action"]) for r in as_list(st["Resource"])]


def test_every_role_is_least_privilege(cfn):
    assert least_privilege_violations(cfn) == []
    roles = {lid for lid, res in cfn["Resources"].items() if res["Type"] == "AWS::IAM::Role"}
    assert roles == {"ServiceRole", "CodeDeployRole", "CanaryGateRole"}, "SAM generated a role of its own"


def test_both_hooks_run_the_gate(cfn):
    update = only(cfn, "AWS::Lambda::Alias")["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == {"Ref": "CanaryGateFunction"}
    assert update["AfterAllowTrafficHook"] == {"Ref": "CanaryGateFunction"}
    assert update["DeploymentGroupName"] == {"Ref": "ServiceFunctionDeploymentGroup"}


def test_the_checks_alarm_and_the_gates_errors_roll_back(cfn):
    group = only(cfn, "AWS::CodeDeploy::DeploymentGroup")["Properties"]
    assert group["AlarmConfiguration"]["Enabled"] is True
    alarms = [a["Name"] for a in group["AlarmConfiguration"]["Alarms"]]
    assert alarms == [{"Fn::Sub": "${MonitoringStackName}-${CheckName}-failing"}, {"Ref": "CanaryGateErrorsAlarm"}]
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    assert group["ServiceRoleArn"] == {"Fn::GetAtt": ["CodeDeployRole", "Arn"]}
    # The name infra/check.yaml gives that alarm, under the parent stack's name as prefix.
    assert load_sam(CHILD)["Resources"]["FailingAlarm"]["Properties"]["AlarmName"] == \
        {"Fn::Sub": "${StackPrefix}-${CheckName}-failing"}
    parent = load_sam()
    prefixes = [res["Properties"]["Parameters"]["StackPrefix"] for res in parent["Resources"].values()
                if res["Type"] == "AWS::Serverless::Application"]
    assert prefixes and all(p == {"Ref": "AWS::StackName"} for p in prefixes)
    checks = {res["Properties"]["Parameters"]["CheckName"] for res in parent["Resources"].values()
              if res["Type"] == "AWS::Serverless::Application"}
    assert set(load_sam(EXAMPLE)["Parameters"]["CheckName"]["AllowedValues"]) <= checks
    watched = resources_of(cfn, "CodeDeployRole", "cloudwatch:DescribeAlarms")
    assert {"Fn::GetAtt": ["CanaryGateErrorsAlarm", "Arn"]} in watched and len(watched) == len(alarms)


def test_the_gate_reports_only_to_its_own_deployment_group(cfn):
    assert resources_of(cfn, "CanaryGateRole", "codedeploy:PutLifecycleEventHookExecutionStatus") == [{
        "Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:"
                   "${ServerlessDeploymentApplication}/${ServiceFunctionDeploymentGroup}"}]
    actions = {a for st in role_statements(cfn, "CanaryGateRole") for a in as_list(st["Action"])}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue",
                       "codedeploy:PutLifecycleEventHookExecutionStatus"}


def test_codedeploy_may_invoke_the_gate_and_move_the_live_alias_only(cfn):
    gate = cfn["Resources"]["CanaryGateFunction"]["Properties"]
    assert gate["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-canary-gate"}
    assert resources_of(cfn, "CodeDeployRole", "lambda:InvokeFunction") == [
        {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-canary-gate"}]
    service = cfn["Resources"]["ServiceFunction"]["Properties"]
    assert service["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-service"}
    assert only(cfn, "AWS::Lambda::Alias")["Properties"]["Name"] == "live"
    assert resources_of(cfn, "CodeDeployRole", "lambda:UpdateAlias") == [
        {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-service:live"}]
    trust = cfn["Resources"]["CodeDeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [st["Principal"] for st in trust] == [{"Service": "codedeploy.amazonaws.com"}]


def test_the_gate_compares_the_new_code_with_the_live_alias(cfn):
    env = cfn["Resources"]["CanaryGateFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CANARY_URL"] == {"Fn::GetAtt": ["ServiceCanaryUrl", "FunctionUrl"]}
    canary_url = cfn["Resources"]["ServiceCanaryUrl"]["Properties"]
    assert canary_url["TargetFunctionArn"] == {"Ref": "ServiceFunction"} and "Qualifier" not in canary_url, \
        "unqualified: $LATEST, the code CodeDeploy is about to shift to"
    assert env["BASELINE_URL"] == {"Ref": "BaselineUrl"}
    assert cfn["Outputs"]["LiveUrl"]["Value"] == {"Fn::GetAtt": ["ServiceFunctionUrl", "FunctionUrl"]}
    live_url = cfn["Resources"]["ServiceFunctionUrl"]["Properties"]
    assert live_url["TargetFunctionArn"] == {"Ref": "ServiceFunctionAliaslive"}


def test_the_gate_reads_every_variable_the_example_sets():
    env = load_sam(EXAMPLE)["Resources"]["CanaryGateFunction"]["Properties"]["Environment"]["Variables"]
    source = "".join(path.read_text() for path in GATE_SOURCES)
    unread = [name for name in env if f'"{name}"' not in source]
    assert unread == []


def test_the_gate_has_time_for_its_analysis_and_its_report():
    props = load_sam(EXAMPLE)["Resources"]["CanaryGateFunction"]["Properties"]
    assert REPORT_BUDGET_S * 2 < props["Timeout"] <= LAMBDA_MAX_TIMEOUT_S
    assert "DeploymentPreference" not in props and "AutoPublishAlias" not in props, "the gate itself is not gated"


def test_the_canary_url_has_the_permissions_sam_gives_the_live_one(cfn):
    def permissions(target: dict[str, Any]) -> list[dict[str, Any]]:
        found = [{k: v for k, v in res["Properties"].items() if k != "FunctionName"}
                 for res in cfn["Resources"].values()
                 if res["Type"] == "AWS::Lambda::Permission" and res["Properties"]["FunctionName"] == target]
        return sorted(found, key=lambda p: p["Action"])

    live = permissions({"Ref": "ServiceFunctionAliaslive"})
    assert live and permissions({"Ref": "ServiceFunction"}) == live
