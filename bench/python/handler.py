"""The products journey as teams write it in Python today: the `make bench` baseline.

Get the synthetic account from Secrets Manager, sign in, list the products, publish one SNS
message with a JSON body, return the result. Written to be fair to Python, not a strawman:
boto3 and requests are imported and the clients created at module level (once per cold start),
the HTTP session keeps connections alive between warm runs, and the account is cached like the
Rust checks cache it (SECRET_TTL_SECS, default 300 s).
"""

import json
import os
import time
import uuid

import boto3
import requests

TARGET = os.environ["TARGET_BASE_URL"].rstrip("/")
ENV = os.environ["CHECK_ENV"]
TOPIC_ARN = os.environ["ALERT_TOPIC_ARN"]
SECRET_ID = os.environ["CREDENTIALS_SECRET_ID"]
SECRET_TTL = float(os.environ.get("SECRET_TTL_SECS", "300"))
TIMEOUT = (3, 10)  # connect, read

secrets = boto3.client("secretsmanager")
sns = boto3.client("sns")
http = requests.Session()
http.headers.update({"User-Agent": "synthetic-python/0.1", "X-Synthetic-Check": "products"})

_account = None
_account_read_at = 0.0


def account():
    global _account, _account_read_at
    if _account is None or time.monotonic() - _account_read_at > SECRET_TTL:
        _account = json.loads(secrets.get_secret_value(SecretId=SECRET_ID)["SecretString"])
        _account_read_at = time.monotonic()
    return _account


def step(steps, name, send, check):
    """Runs one request; records its outcome and time. Returns the response if it passed."""
    started = time.perf_counter()
    try:
        response = send()
        ok, error = check(response), None
    except (requests.RequestException, ValueError) as e:
        response, ok, error = None, False, str(e)
    steps.append({
        "name": name,
        "outcome": "passed" if ok else "failed",
        "duration_ms": (time.perf_counter() - started) * 1000,
        "status": response.status_code if response is not None else None,
        "error": error,
    })
    return response if ok else None


def handler(event, context):
    run_id = str(uuid.uuid4())
    started = time.perf_counter()
    headers = {"X-Synthetic-Run-Id": run_id}
    creds = account()
    steps = []
    login = step(
        steps, "login",
        lambda: http.post(TARGET + "/api/auth/token", json={"email": creds["email"], "password": creds["password"]},
                          headers=headers, timeout=TIMEOUT),
        lambda r: r.status_code == 200 and bool(r.json().get("access_token")),
    )
    if login is not None:
        token = login.json()["access_token"]
        step(
            steps, "products",
            lambda: http.get(TARGET + "/api/products", headers={**headers, "Authorization": "Bearer " + token},
                             timeout=TIMEOUT),
            lambda r: r.status_code == 200 and isinstance(r.json().get("data"), list) and len(r.json()["data"]) > 0,
        )
    status = "passed" if len(steps) == 2 and all(s["outcome"] == "passed" for s in steps) else "failed"
    result = {"check": "products", "env": ENV, "target": TARGET, "run_id": run_id, "status": status, "steps": steps,
              "duration_ms": (time.perf_counter() - started) * 1000}
    alert = {"event_action": "resolve" if status == "passed" else "trigger",
             "dedup_key": "synthetic/%s/products" % ENV, **result}
    sns.publish(
        TopicArn=TOPIC_ARN,
        Subject="[%s] products %s" % (ENV, status.upper()),
        Message=json.dumps(alert),
        MessageAttributes={"check": {"DataType": "String", "StringValue": "products"},
                           "status": {"DataType": "String", "StringValue": status}},
    )
    print(json.dumps({"message": "run finished", "run_id": run_id, "status": status}))
    return result
