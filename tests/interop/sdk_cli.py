#!/usr/bin/env python3
"""A tiny command line over the official COS Python SDK (cos-python-sdk-v5).

The Rust mount tests (tests/mount_*.rs) call it as a subprocess to play "another client
of the same bucket": upload objects the mount must read, download objects the mount
wrote, and prove that SSE-C objects are refused without their key.

Connection settings come from the environment, never from argv, so secrets do not show
up in `ps`:  COSLOCAL_ENDPOINT (https://127.0.0.1:PORT), COSLOCAL_BUCKET, COSLOCAL_REGION,
COSLOCAL_SECRET_ID, COSLOCAL_SECRET_KEY, COSLOCAL_CA (PEM file to trust).
An SSE-C key is read from a file (--sse-c-key-file, first non-comment line: 32 raw bytes
or base64 of 32 bytes).

Exit codes: 0 success; 2 the service refused (stderr: `refused status=N code=C`);
1 anything else (stderr: the exception).
"""

import argparse
import base64
import hashlib
import json
import os
import sys

from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError


def client():
    endpoint = os.environ["COSLOCAL_ENDPOINT"]
    scheme, _, host = endpoint.partition("://")
    conf = CosConfig(
        Region=os.environ.get("COSLOCAL_REGION", "ap-guangzhou"),
        SecretId=os.environ["COSLOCAL_SECRET_ID"],
        SecretKey=os.environ["COSLOCAL_SECRET_KEY"],
        Scheme=scheme,
        # Domain = the host itself: coslocal serves one bucket on its own address.
        Domain=host.rstrip("/"),
        VerifySSL=os.environ.get("COSLOCAL_CA") or True,
    )
    # retry=1: refusals must surface at once, the tests measure them.
    return CosS3Client(conf, retry=1)


def ssec_args(path):
    """The three SDK keyword arguments for an SSE-C key file, or {}."""
    if not path:
        return {}
    with open(path, "rb") as f:
        lines = [l.rstrip(b"\r\n") for l in f if l.strip() and not l.startswith(b"#")]
    text = lines[0]
    if len(text) == 32:
        raw = text
    else:
        raw = base64.b64decode(text.strip())
    if len(raw) != 32:
        raise SystemExit("sdk_cli: SSE-C key must be 32 bytes")
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": base64.b64encode(raw).decode(),
        "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(raw).digest()).decode(),
    }


def parse_meta(pairs):
    meta = {}
    for p in pairs or []:
        name, _, value = p.partition("=")
        meta[name] = value
    return meta


def cmd_put(c, bucket, a):
    with open(a.file, "rb") as f:
        body = f.read()
    kw = ssec_args(a.sse_c_key_file)
    if a.sse:
        kw["ServerSideEncryption"] = a.sse
    meta = parse_meta(a.meta)
    if meta:
        kw["Metadata"] = meta
    if a.content_type:
        kw["ContentType"] = a.content_type
    r = c.put_object(Bucket=bucket, Key=a.key, Body=body, **kw)
    print(json.dumps({"etag": r.get("ETag")}))


def cmd_put_many(c, bucket, a):
    """COUNT small objects PREFIX000000..., in one process (a big directory is quick)."""
    from concurrent.futures import ThreadPoolExecutor

    kw = ssec_args(a.sse_c_key_file)

    def one(i):
        key = "%s%06d" % (a.prefix, i)
        c.put_object(Bucket=bucket, Key=key, Body=("object %d\n" % i).encode(), **kw)

    with ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(one, range(a.count)))
    print(json.dumps({"count": a.count}))


def cmd_get(c, bucket, a):
    r = c.get_object(Bucket=bucket, Key=a.key, **ssec_args(a.sse_c_key_file))
    data = r["Body"].get_raw_stream().read()
    with open(a.out, "wb") as f:
        f.write(data)
    print(json.dumps({"size": len(data)}))


def cmd_head(c, bucket, a):
    r = c.head_object(Bucket=bucket, Key=a.key, **ssec_args(a.sse_c_key_file))
    print(json.dumps({k.lower(): v for k, v in r.items()}))


def cmd_delete(c, bucket, a):
    c.delete_object(Bucket=bucket, Key=a.key)
    print("{}")


def cmd_list(c, bucket, a):
    keys, marker = [], ""
    while True:
        r = c.list_objects(Bucket=bucket, Prefix=a.prefix, Marker=marker, MaxKeys=1000)
        keys += [o["Key"] for o in r.get("Contents", [])]
        if r.get("IsTruncated") != "true":
            break
        marker = r.get("NextMarker") or keys[-1]
    print(json.dumps(keys))


def cmd_uploads(c, bucket, a):
    """Multipart uploads in progress under PREFIX, as [[key, upload id], ...]."""
    out, key_marker, id_marker = [], "", ""
    for _ in range(100):
        r = c.list_multipart_uploads(
            Bucket=bucket, Prefix=a.prefix, KeyMarker=key_marker, UploadIdMarker=id_marker
        )
        ups = r.get("Upload", [])
        if isinstance(ups, dict):
            ups = [ups]
        out += [[u["Key"], u["UploadId"]] for u in ups]
        if r.get("IsTruncated") != "true":
            break
        key_marker, id_marker = r.get("NextKeyMarker", ""), r.get("NextUploadIdMarker", "")
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    put = sub.add_parser("put")
    put.add_argument("key")
    put.add_argument("file")
    put.add_argument("--sse-c-key-file")
    put.add_argument("--sse", choices=["AES256", "cos/kms"])
    put.add_argument("--meta", action="append", help="x-cos-meta-NAME=VALUE")
    put.add_argument("--content-type")
    many = sub.add_parser("put-many")
    many.add_argument("prefix")
    many.add_argument("count", type=int)
    many.add_argument("--sse-c-key-file")
    get = sub.add_parser("get")
    get.add_argument("key")
    get.add_argument("out")
    get.add_argument("--sse-c-key-file")
    head = sub.add_parser("head")
    head.add_argument("key")
    head.add_argument("--sse-c-key-file")
    dele = sub.add_parser("delete")
    dele.add_argument("key")
    lst = sub.add_parser("list")
    lst.add_argument("prefix", nargs="?", default="")
    ups = sub.add_parser("uploads")
    ups.add_argument("prefix", nargs="?", default="")
    a = p.parse_args()

    c = client()
    bucket = os.environ["COSLOCAL_BUCKET"]
    try:
        {"put": cmd_put, "put-many": cmd_put_many, "get": cmd_get, "head": cmd_head, "delete": cmd_delete, "list": cmd_list, "uploads": cmd_uploads}[
            a.cmd
        ](c, bucket, a)
    except CosServiceError as e:
        sys.stderr.write(
            "refused status=%s code=%s message=%s\n"
            % (e.get_status_code(), e.get_error_code(), e.get_error_msg())
        )
        return 2
    except Exception as e:  # noqa: BLE001 - report anything else as a tool failure
        sys.stderr.write("error: %r\n" % (e,))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
