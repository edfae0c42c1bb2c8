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
import io
import json
import os
import re
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
# No real AWS: fake credentials, no profile files, and a region for the SAM translator's pseudo
# parameters.
os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_SESSION_TOKEN": "testing", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
os.environ.pop("AWS_PROFILE", None)
ACCOUNT = "123456789012"  # moto's default account
BUCKET = "artifacts"

# binary (= cargo package) -> SAM logical id of its function
FUNCTIONS = {
    "check-health": "HealthCheckFunction",
    "check-auth": "AuthCheckFunction",
    "check-products": "ProductsCheckFunction",
    "check-payment": "PaymentCheckFunction",
    "pagerduty-forwarder": "PagerDutyForwarderFunction",
}
CHECKS = {"health": "Health", "auth": "Auth", "products": "Products", "payment": "Payment"}
SECRET_CHECKS = {"auth", "products", "payment"}

# Per-step budgets of the contract: seconds per attempt. Every step gets 2 attempts with a 2 s
# delay between them; login gets one more attempt after a secret refresh; publishing the alert
# may take up to 10 s.
STEP_BUDGET = {"health": 5, "login": 10, "products": 10, "payment_create": 15, "payment_get": 10, "payment_refund": 15}
STEPS = {
    "health": ["health"],
    "auth": ["login"],
    "products": ["login", "products"],
    "payment": ["login", "payment_create", "payment_get", "payment_refund"],
}
RETRY_DELAY, PUBLISH_BUDGET = 2, 10

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


def load_sam() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


def to_cloudformation(sam: dict[str, Any] | None = None) -> dict[str, Any]:
    """SAM -> CloudFormation, with each local CodeUri replaced by the S3 location `sam deploy`
    would upload it to (s3://artifacts/<bin>.zip)."""
    sam = copy.deepcopy(sam or load_sam())
    for res in sam["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            code_uri = res["Properties"]["CodeUri"]
            binary = re.fullmatch(r"\.\./target/lambda/([a-z-]+)/bootstrap\.zip", code_uri).group(1)
            res["Properties"]["CodeUri"] = f"s3://{BUCKET}/{binary}.zip"
    return transform(sam, {}, NoManagedPolicies())


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return to_cloudformation()


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


def test_iam_is_least_privilege(cfn):
    assert least_privilege_violations(cfn) == []


def test_least_privilege_check_can_fail(cfn):
    role = "HealthCheckRole"

    def with_statement(statement):
        broken = copy.deepcopy(cfn)
        broken["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(statement)
        return least_privilege_violations(broken)

    assert with_statement({"Effect": "Allow", "Action": "*", "Resource": {"Ref": "AlertTopic"}})
    assert with_statement({"Effect": "Allow", "Action": ["sns:*"], "Resource": {"Ref": "AlertTopic"}})
    assert with_statement({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"})
    # allowlisted for the key policy, not for a role
    assert with_statement({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"})
    assert with_statement({"Effect": "Allow", "Action": "logs:PutLogEvents",
                           "Resource": {"Fn::Sub": "arn:${AWS::Partition}:logs:*:*:*"}})
    assert with_statement({"Fn::If": ["HasAlarmEmail", {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
                                      {"Ref": "AWS::NoValue"}]})
    managed = copy.deepcopy(cfn)
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


def identity_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [st for lid, _, kind, doc in policy_documents(template) if lid == role and kind == "identity"
            for st in statements(doc)]


def resources_for(sts: list[dict[str, Any]], action: str) -> list[Any]:
    return [r for st in sts if action in as_list(st["Action"]) for r in as_list(st["Resource"])]


@pytest.mark.parametrize("binary", sorted(FUNCTIONS))
def test_each_function_reaches_only_its_own_secret_topic_and_log_group(cfn, binary):
    fn = cfn["Resources"][FUNCTIONS[binary]]
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    sts = identity_statements(cfn, role)
    log_group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources_for(sts, "logs:PutLogEvents") == [{"Fn::GetAtt": [log_group, "Arn"]}]
    assert resources_for(sts, "logs:CreateLogGroup") == []  # the stack creates the group
    check = binary.removeprefix("check-")
    if binary == "pagerduty-forwarder":
        secret, topics = [{"Ref": "PagerDutySecretArn"}], []
    else:
        secret = [{"Ref": "SyntheticAccountSecretArn"}] if check in SECRET_CHECKS else []
        topics = [{"Ref": "AlertTopic"}]
    assert resources_for(sts, "secretsmanager:GetSecretValue") == secret
    assert resources_for(sts, "sns:Publish") == topics
    # kms:Decrypt of a secret's key only through Secrets Manager, and only when a key ARN is given
    for st in sts:
        if "kms:Decrypt" in as_list(st["Action"]) and st["Resource"] != {"Fn::GetAtt": ["AlertKey", "Arn"]}:
            assert st["Resource"]["Ref"].endswith("SecretKmsKeyArn")
            assert "kms:ViaService" in st["Condition"]["StringEquals"]
    raw_sts = cfn["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for st in raw_sts:
        if "Fn::If" in st:
            assert st["Fn::If"][0] in ("HasSyntheticAccountSecretKey", "HasPagerDutySecretKey")


# -------------------------------------------------------------------- functions and budgets
def worst_case_seconds(check: str) -> int:
    total = PUBLISH_BUDGET
    for step in STEPS[check]:
        attempts = 3 if step == "login" else 2
        total += attempts * STEP_BUDGET[step] + RETRY_DELAY
    return total


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_timeout_covers_the_step_budgets(cfn, check):
    timeout = cfn["Resources"][f"{CHECKS[check]}CheckFunction"]["Properties"]["Timeout"]
    worst = worst_case_seconds(check)
    assert worst + 3 <= timeout <= worst + 10, (check, worst, timeout)
    assert f"= {worst}," in TEMPLATE.read_text(), f"the arithmetic for {check} is not written next to its Timeout"


def test_functions_follow_the_contract(cfn):
    for lid in FUNCTIONS.values():
        props = cfn["Resources"][lid]["Properties"]
        assert (props["Runtime"], props["Architectures"], props["Handler"], props["MemorySize"]) == \
               ("provided.al2023", ["arm64"], "bootstrap", 128)
        assert props["LoggingConfig"]["LogGroup"]["Ref"].endswith("LogGroup")
    sam = load_sam()
    assert sam["Globals"]["Function"] == {
        "Runtime": "provided.al2023", "Architectures": ["arm64"], "Handler": "bootstrap", "MemorySize": 128}
    for binary, lid in FUNCTIONS.items():
        props = sam["Resources"][lid]["Properties"]
        assert props["CodeUri"] == f"../target/lambda/{binary}/bootstrap.zip"
        env = set(props["Environment"]["Variables"])
        if binary == "pagerduty-forwarder":
            assert env == {"PAGERDUTY_SECRET_ID", "PAGERDUTY_EVENTS_URL", "RUNBOOK_URL", "METRICS_NAMESPACE",
                           "PAGERDUTY_CLIENT_URL"}
        else:
            expected = {"TARGET_BASE_URL", "CHECK_ENV", "ALERT_TOPIC_ARN", "METRICS_NAMESPACE",
                        "TARGET_OVERRIDE_ALLOWED_HOSTS"}
            if binary.removeprefix("check-") in SECRET_CHECKS:
                expected.add("CREDENTIALS_SECRET_ID")
            assert env == expected
            assert sam["Resources"][lid]["Condition"] == f"{CHECKS[binary.removeprefix('check-')]}CheckEnabled"
    assert sam["Parameters"]["ScheduleRateMinutes"]["Default"] == "5"
    assert sam["Parameters"]["SloTargetPercent"]["Default"] == 99.5
    # secrets come in by ARN only; the one sensitive parameter (an integration URL) is not echoed
    for name in ("SyntheticAccountSecretArn", "PagerDutySecretArn"):
        assert "Default" not in sam["Parameters"][name]
        assert sam["Parameters"][name]["AllowedPattern"].startswith("^arn:aws[a-z-]*:secretsmanager:")
    assert sam["Parameters"]["OpsPagerDutyEndpointUrl"]["NoEcho"] is True


def test_email_subscription_passes_triggers_only(cfn):
    props = cfn["Resources"]["AlertEmailSubscription"]["Properties"]
    assert props["FilterPolicy"] == {"event_action": ["trigger"]}
    assert props.get("FilterPolicyScope", "MessageAttributes") == "MessageAttributes"
    forwarder_subs = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"
                      and r["Properties"].get("Protocol") == "lambda"]
    assert len(forwarder_subs) == 1 and "FilterPolicy" not in forwarder_subs[0]["Properties"]


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
                                      "sqs", "cloudwatch", "kms", "iam", "logs")}
    s3 = clients["s3"]
    s3.create_bucket(Bucket=BUCKET)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bootstrap", "#!/bin/sh\n")
    for binary in FUNCTIONS:
        s3.put_object(Bucket=BUCKET, Key=f"{binary}.zip", Body=buf.getvalue())
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
        if rtype == "AWS::KMS::Key" and attr == "Arn":
            return self.aws["kms"].describe_key(KeyId=phys)["KeyMetadata"]["Arn"]
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
        for rtype in ("AWS::SQS::QueuePolicy", "AWS::SNS::Subscription", "AWS::Lambda::EventInvokeConfig",
                      "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
            for lid, res in self.template["Resources"].items():
                if res["Type"] != rtype or ("Condition" in res and not self.condition(res["Condition"])):
                    continue
                props = self.resolve(res["Properties"])
                self.physical[lid] = self._create(rtype, props)
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


def functions_of(aws, stack) -> dict[str, dict[str, Any]]:
    names = {stack.physical[lid]: binary for binary, lid in FUNCTIONS.items() if lid in stack.physical}
    paginator = aws["lambda"].get_paginator("list_functions")
    return {names[f["FunctionName"]]: f for page in paginator.paginate() for f in page["Functions"]
            if f["FunctionName"] in names}


def test_stack_creates_in_moto(aws, cfn):
    skipped = {r["Type"] for r in cfn["Resources"].values()} - set(get_model_map()) - PROVISIONED_BY_TEST
    assert skipped == set(), "resource types neither moto nor this test creates"

    params = {**base_params(aws), "AlarmEmail": "oncall@example.test",
              "OpsPagerDutyEndpointUrl": "https://events.pagerduty.example.test/integration/x/enqueue",
              "SyntheticAccountSecretKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
    stack = deploy(aws, cfn, "synthetics-full", params)
    alert_topic, ops_topic = stack.physical["AlertTopic"], stack.physical["OpsTopic"]

    # functions
    functions = functions_of(aws, stack)
    assert set(functions) == set(FUNCTIONS)
    for binary, fn in functions.items():
        # (moto's CloudFormation drops Architectures and LoggingConfig; test_functions_follow_the_contract
        # checks them in the transformed template)
        assert (fn["Runtime"], fn["Handler"], fn["MemorySize"]) == ("provided.al2023", "bootstrap", 128)
        assert fn["Timeout"] == cfn["Resources"][FUNCTIONS[binary]]["Properties"]["Timeout"]
        env = fn["Environment"]["Variables"]
        if binary != "pagerduty-forwarder":
            assert env["ALERT_TOPIC_ARN"] == alert_topic and env["CHECK_ENV"] == "prod"
            assert env["METRICS_NAMESPACE"] == "SyntheticMonitoring"
            assert "TARGET_OVERRIDE_ALLOWED_HOSTS" not in env
            assert env.get("CREDENTIALS_SECRET_ID") == (
                aws["secrets"]["synthetic"] if binary.removeprefix("check-") in SECRET_CHECKS else None)
        else:
            assert env["PAGERDUTY_SECRET_ID"] == aws["secrets"]["pagerduty"]
            assert env["PAGERDUTY_EVENTS_URL"] == "https://events.pagerduty.com"
            assert env["PAGERDUTY_CLIENT_URL"].endswith(f"#dashboards:name={stack.physical['Dashboard']}")
        invoke = aws["lambda"].get_function_event_invoke_config(FunctionName=fn["FunctionName"])
        assert invoke["DestinationConfig"]["OnFailure"]["Destination"].startswith(f"arn:aws:sqs:{REGION}:{ACCOUNT}:")
        # a failed invocation (e.g. an undeliverable alert) gets Lambda's retry before the DLQ
        assert invoke["MaximumRetryAttempts"] >= 1

    # schedules: one rule per check, 5 minutes, with a retry policy and a DLQ
    rules = [stack.physical[f"{p}CheckFunctionSchedule"] for p in CHECKS.values()]
    check_dlq_arn = stack.get_att("CheckDeadLetterQueue", "Arn")
    listed = {r["Name"]: r for r in aws["events"].list_rules()["Rules"]}
    for rule in rules:
        assert listed[rule]["ScheduleExpression"] == "rate(5 minutes)"
        (target,) = aws["events"].list_targets_by_rule(Rule=rule)["Targets"]
        assert target["DeadLetterConfig"]["Arn"] == check_dlq_arn
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2

    # topics and subscriptions
    topics = {t["TopicArn"] for t in aws["sns"].list_topics()["Topics"]}
    assert {alert_topic, ops_topic} <= topics
    subs = aws["sns"].list_subscriptions_by_topic(TopicArn=alert_topic)["Subscriptions"]
    assert sorted(s["Protocol"] for s in subs) == ["email", "lambda"]
    for sub in subs:
        attrs = aws["sns"].get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        if sub["Protocol"] == "email":
            assert json.loads(attrs["FilterPolicy"]) == {"event_action": ["trigger"]}
        else:
            assert sub["Endpoint"] == functions["pagerduty-forwarder"]["FunctionArn"]
            assert "FilterPolicy" not in attrs
    ops_subs = aws["sns"].list_subscriptions_by_topic(TopicArn=ops_topic)["Subscriptions"]
    assert sorted(s["Protocol"] for s in ops_subs) == ["email", "https"]

    # queues
    queue_names = {url.rsplit("/", 1)[-1] for url in aws["sqs"].list_queues()["QueueUrls"]}
    for lid in ("CheckDeadLetterQueue", "AlertDeadLetterQueue"):
        assert stack.get_att(lid, "QueueName") in queue_names
        policy = json.loads(aws["sqs"].get_queue_attributes(QueueUrl=stack.physical[lid], AttributeNames=["Policy"])
                            ["Attributes"]["Policy"])
        assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
    check_policy = json.loads(aws["sqs"].get_queue_attributes(
        QueueUrl=stack.physical["CheckDeadLetterQueue"], AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert len(check_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]) == 4

    # alarms: per check 3 + 4 burn-rate windows + 2 composites, forwarder errors, PagerDuty
    # rejections, 2 DLQ depth
    alarms = {a["AlarmName"]: a for a in aws["cloudwatch"].describe_alarms(
        AlarmNamePrefix="synthetics-full-", MaxRecords=100)["MetricAlarms"]}
    assert len(alarms) == 4 * 7 + 4
    rejected = alarms["synthetics-full-pagerduty-rejected"]
    assert (rejected["MetricName"], rejected["Dimensions"]) == ("PagerDutyRejected", [{"Name": "env", "Value": "prod"}])
    assert len(stack.created["AWS::CloudWatch::CompositeAlarm"]) == 4 * 2
    for name, alarm in alarms.items():
        if "-burn-rate-" in name:
            assert alarm["AlarmActions"] == []  # the composite pages, not each window
        else:
            assert alarm["AlarmActions"] == [ops_topic] and alarm["OKActions"] == [ops_topic], name
    for check in CHECKS:
        heartbeat = alarms[f"synthetics-full-{check}-heartbeat"]
        assert (heartbeat["Statistic"], heartbeat["TreatMissingData"]) == ("SampleCount", "breaching")
        assert {d["Value"] for d in heartbeat["Dimensions"]} == {check, "prod"}
        burn = alarms[f"synthetics-full-{check}-burn-rate-1h"]
        expression = next(m["Expression"] for m in burn["Metrics"] if "Expression" in m)
        assert expression == "(1 - availability) * 100 / (100 - 99.5)"
        assert burn["Threshold"] == 14.4
        assert alarms[f"synthetics-full-{check}-burn-rate-30m"]["Threshold"] == 6
    dashboard = aws["cloudwatch"].get_dashboard(DashboardName=stack.physical["Dashboard"])
    body = json.loads(dashboard["DashboardBody"])
    titles = [w["properties"].get("title", "") for w in body["widgets"]]
    assert "Success rate per check (%)" in titles
    assert all(f"{check}: latency per step, p50 / p95 (ms)" in titles for check in CHECKS)


def test_disabled_check_and_no_optional_channels(aws, cfn):
    params = {**base_params(aws), "EnablePaymentCheck": "false", "ScheduleRateMinutes": "1"}
    stack = deploy(aws, cfn, "synthetics-lean", params)
    assert set(functions_of(aws, stack)) == set(FUNCTIONS) - {"check-payment"}
    assert "PaymentCheckFunctionSchedule" not in stack.physical
    rule = stack.physical["HealthCheckFunctionSchedule"]
    assert aws["events"].describe_rule(Name=rule)["ScheduleExpression"] == "rate(1 minute)"
    alarms = aws["cloudwatch"].describe_alarms(AlarmNamePrefix="synthetics-lean-", MaxRecords=100)["MetricAlarms"]
    assert len(alarms) == 3 * 7 + 4
    assert not [a for a in alarms if "payment" in a["AlarmName"]]
    assert all(a["Period"] == 60 for a in alarms if a["AlarmName"].endswith("-heartbeat"))
    subs = aws["sns"].list_subscriptions_by_topic(TopicArn=stack.physical["AlertTopic"])["Subscriptions"]
    assert [s["Protocol"] for s in subs] == ["lambda"]
    assert aws["sns"].list_subscriptions_by_topic(TopicArn=stack.physical["OpsTopic"])["Subscriptions"] == []
    check_policy = json.loads(aws["sqs"].get_queue_attributes(
        QueueUrl=stack.physical["CheckDeadLetterQueue"], AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert len(check_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]) == 3
    assert len(stack.created["AWS::CloudWatch::CompositeAlarm"]) == 3 * 2
    body = json.loads(aws["cloudwatch"].get_dashboard(DashboardName=stack.physical["Dashboard"])["DashboardBody"])
    errors_widget = next(w for w in body["widgets"] if w["properties"].get("title", "").startswith("Lambda errors"))
    assert [m[-1]["label"] for m in errors_widget["properties"]["metrics"]] == \
           ["check-health", "check-auth", "check-products", "pagerduty-forwarder"]
