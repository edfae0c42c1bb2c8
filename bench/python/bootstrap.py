#!/usr/bin/env python3
"""A minimal AWS Lambda custom runtime for the Python baseline (`make bench`).

It does what Lambda's Python runtime does, with less: import the handler module (its module-level
imports and clients are the init phase), then loop on the Runtime API: GET next, call
`handler.handler(event, context)`, POST the result or the error. It is lighter than AWS's own
runtime interface client, so it flatters Python's cold start, if anything.
"""

import json
import os
import sys
import urllib.request

API = "http://%s/2018-06-01/runtime" % os.environ["AWS_LAMBDA_RUNTIME_API"]


def post(path, body, headers=None):
    data = json.dumps(body).encode()
    request = urllib.request.Request(API + path, data=data, method="POST", headers=headers or {})
    urllib.request.urlopen(request).read()


def error_body(error):
    return {"errorType": type(error).__name__, "errorMessage": str(error)}


class Context:
    def __init__(self, headers):
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.deadline_ms = int(headers["Lambda-Runtime-Deadline-Ms"])
        self.invoked_function_arn = headers["Lambda-Runtime-Invoked-Function-Arn"]
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import handler
except Exception as error:  # the init error, reported as Lambda's runtime does
    post("/init/error", error_body(error), {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
    sys.exit(1)

while True:
    try:
        with urllib.request.urlopen(API + "/invocation/next") as reply:
            context = Context(reply.headers)
            event = json.loads(reply.read())
    except OSError:  # the emulator is shutting down (410) or gone
        sys.exit(0)
    try:
        result = handler.handler(event, context)
    except Exception as error:
        post("/invocation/%s/error" % context.aws_request_id, error_body(error))
    else:
        post("/invocation/%s/response" % context.aws_request_id, result)
