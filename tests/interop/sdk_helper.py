#!/usr/bin/env python3
"""Client-side interop helper: put/get/head one object with the official COS Python SDK
(cos-python-sdk-v5), optionally with an SSE-C key. tests/client_sdk_interop.rs runs it as a
subprocess to check that objects written by the SDK are read by cosmount's client with the
same key (and refused without it), and the reverse.

Usage:
    sdk_helper.py put  KEY SRC_FILE [--key-file F]
    sdk_helper.py get  KEY DST_FILE [--key-file F]
    sdk_helper.py head KEY          [--key-file F]

Secrets never go on the command line: the connection comes from the environment
(SDKH_ENDPOINT such as https://127.0.0.1:PORT, SDKH_REGION, SDKH_SECRET_ID,
SDKH_SECRET_KEY, SDKH_CA = PEM file to trust) and the SSE-C key from a file holding the
base64 of the 32 key bytes.

Exit status: 0 done; 2 the service refused the request (stderr: "refused <status> <code>");
1 any other failure.
"""

import argparse
import base64
import hashlib
import json
import os
import sys

from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError


def make_client():
    scheme, _, host = os.environ["SDKH_ENDPOINT"].partition("://")
    config = CosConfig(
        Region=os.environ.get("SDKH_REGION", "ap-guangzhou"),
        SecretId=os.environ["SDKH_SECRET_ID"],
        SecretKey=os.environ["SDKH_SECRET_KEY"],
        Scheme=scheme,
        # The server is addressed directly (one bucket per address).
        Domain=host.strip("/"),
        VerifySSL=os.environ.get("SDKH_CA") or True,
    )
    # One try: a refusal must surface at once.
    return CosS3Client(config, retry=1)


def sse_kwargs(key_file):
    """The SDK's SSE-C keyword arguments for a key file (base64 of 32 bytes), or {}."""
    if not key_file:
        return {}
    with open(key_file, "rb") as f:
        text = f.read().strip()
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 32:
        raise ValueError("the SSE-C key must be 32 bytes")
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": base64.b64encode(raw).decode(),
        "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(raw).digest()).decode(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["put", "get", "head"])
    p.add_argument("key")
    p.add_argument("path", nargs="?")
    p.add_argument("--key-file")
    a = p.parse_args()
    bucket = os.environ["SDKH_BUCKET"]
    client = make_client()
    extra = sse_kwargs(a.key_file)
    try:
        if a.command == "put":
            with open(a.path, "rb") as f:
                body = f.read()
            r = client.put_object(Bucket=bucket, Key=a.key, Body=body, **extra)
            print(json.dumps({"etag": r.get("ETag", "").strip('"'),
                              "crc64": r.get("x-cos-hash-crc64ecma")}))
        elif a.command == "get":
            r = client.get_object(Bucket=bucket, Key=a.key, **extra)
            data = r["Body"].get_raw_stream().read()
            with open(a.path, "wb") as f:
                f.write(data)
            print(json.dumps({"size": len(data)}))
        else:
            r = client.head_object(Bucket=bucket, Key=a.key, **extra)
            h = {k.lower(): v for k, v in r.items()}
            print(json.dumps({"size": int(h.get("content-length", "0")),
                              "key_md5": h.get("x-cos-server-side-encryption-customer-key-md5")}))
    except CosServiceError as e:
        print("refused %s %s: %s" % (e.get_status_code(), e.get_error_code(), e.get_error_msg()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - report anything else as a plain failure
        print("error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
