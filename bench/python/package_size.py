"""Prints the deployment zip size of the Python baseline as JSON, for `make bench`.

The zip is built in memory like a Lambda deployment package: the two files of bench/python plus
the installed packages they import that Lambda's Python runtime does not provide (requests and
its dependencies). boto3 is in the runtime; AWS recommends bundling it anyway to pin its version,
so the size with it bundled is printed too. Compiled caches (__pycache__) are left out.
"""

import io
import json
import os
import sys
import zipfile

import boto3
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.dirname(os.path.dirname(requests.__file__))
REQUESTS = ["requests", "urllib3", "idna", "certifi", "charset_normalizer"]
BOTO3 = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py"]


def zipped(packages):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("bootstrap.py", "handler.py"):
            zf.write(os.path.join(HERE, name), name)
        for package in packages:
            root = os.path.join(SITE, package)
            if os.path.isfile(root):
                zf.write(root, package)
                continue
            for folder, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                for file in files:
                    path = os.path.join(folder, file)
                    zf.write(path, os.path.relpath(path, SITE))
    return buffer.tell()


json.dump({"without_boto3": zipped(REQUESTS), "with_boto3": zipped(REQUESTS + BOTO3),
           "python": sys.version.split()[0], "boto3": boto3.__version__, "requests": requests.__version__}, sys.stdout)
