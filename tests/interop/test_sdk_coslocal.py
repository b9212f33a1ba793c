"""coslocal against the official Tencent COS Python SDK (cos-python-sdk-v5): if the SDK
and coslocal disagree on signing, addressing, XML or SSE headers, these tests fail.

Run: scripts/setup-python.sh && cargo build --bin coslocal &&
     .venv/bin/pytest tests/interop/test_sdk_coslocal.py
"""
import base64
import hashlib
import json
import os
from urllib.parse import unquote

import pytest
from qcloud_cos.cos_exception import CosServiceError

from conftest import BUCKET, REGION

KEY = b"0123456789ABCDEF0123456789ABCDEF"
KEY2 = b"0123456789abcdef0123456789abcdef"


def ssec(raw, prefix=""):
    return {
        prefix + "SSECustomerAlgorithm": "AES256",
        prefix + "SSECustomerKey": base64.b64encode(raw).decode(),
        prefix + "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(raw).digest()).decode(),
    }


def body_of(resp):
    return resp["Body"].get_raw_stream().read()


AWKWARD = ["plain.txt", "with space/file name.txt", "plus+sign", "percent%20literal%", "unicode/日本語-ü.bin",
           "dir/", "a/../b", "./dot"]


@pytest.mark.parametrize("key", AWKWARD)
def test_put_get_head_awkward_keys(client, key):
    data = ("payload for " + key).encode() * 10
    put = client.put_object(Bucket=BUCKET, Key=key, Body=data, EnableMD5=True, ContentType="text/plain",
                            Metadata={"x-cos-meta-mode": "33188"})
    assert put["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    got = client.get_object(Bucket=BUCKET, Key=key, KeySimplifyCheck=False)
    assert body_of(got) == data
    head = client.head_object(Bucket=BUCKET, Key=key)
    assert int(head["Content-Length"]) == len(data)
    assert head["x-cos-meta-mode"] == "33188"
    assert head["Content-Type"] == "text/plain"
    assert "x-cos-hash-crc64ecma" in head


def test_ranged_get(client):
    data = bytes(range(256)) * 40
    client.put_object(Bucket=BUCKET, Key="range.bin", Body=data)
    got = client.get_object(Bucket=BUCKET, Key="range.bin", Range="bytes=100-1099")
    assert body_of(got) == data[100:1100]


def test_list_pagination_prefixes_and_encoding(client):
    keys = [f"list/{i:03d} item+{i}.txt" for i in range(25)] + ["list/sub/a", "list/sub/b", "list/日本/c"]
    for k in keys:
        client.put_object(Bucket=BUCKET, Key=k, Body=b"x")
    seen, prefixes, marker = [], [], ""
    while True:
        # The SDK always asks for encoding-type=url and decodes the answer itself.
        r = client.list_objects(Bucket=BUCKET, Prefix="list/", Delimiter="/", Marker=marker, MaxKeys=7)
        seen += [c["Key"] for c in r.get("Contents", [])]
        prefixes += [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        if r["IsTruncated"] == "false":
            break
        marker = r["NextMarker"]
    assert seen == sorted(k for k in keys if "/" not in k[len("list/"):])
    assert prefixes == ["list/sub/", "list/日本/"]
    # Asked for explicitly, the keys stay percent-encoded.
    raw = client.list_objects(Bucket=BUCKET, Prefix="list/000", EncodingType="url")
    assert [unquote(c["Key"]) for c in raw["Contents"]] == ["list/000 item+0.txt"]
    assert raw["Contents"][0]["Key"] != "list/000 item+0.txt"


def test_multipart_upload(client):
    key = "mp/big file.bin"
    parts = [os.urandom(1024 * 1024), os.urandom(1024 * 1024 + 3), os.urandom(1000)]
    up = client.create_multipart_upload(Bucket=BUCKET, Key=key, ContentType="application/x-mp")
    etags = []
    for n, p in enumerate(parts, 1):
        r = client.upload_part(Bucket=BUCKET, Key=key, Body=p, PartNumber=n, UploadId=up["UploadId"], EnableMD5=True)
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    listed = client.list_parts(Bucket=BUCKET, Key=key, UploadId=up["UploadId"])
    assert [int(p["PartNumber"]) for p in listed["Part"]] == [1, 2, 3]
    done = client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up["UploadId"],
                                            MultipartUpload={"Part": etags})
    assert done["ETag"].strip('"').endswith("-3")
    assert body_of(client.get_object(Bucket=BUCKET, Key=key)) == b"".join(parts)
    assert client.head_object(Bucket=BUCKET, Key=key)["Content-Type"] == "application/x-mp"


def test_multipart_rules_reach_the_sdk(client):
    key = "mp/small"
    up = client.create_multipart_upload(Bucket=BUCKET, Key=key)
    etags = []
    for n in (1, 2):
        r = client.upload_part(Bucket=BUCKET, Key=key, Body=b"tiny", PartNumber=n, UploadId=up["UploadId"])
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    with pytest.raises(CosServiceError) as e:
        client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up["UploadId"],
                                         MultipartUpload={"Part": etags})
    assert e.value.get_error_code() == "EntityTooSmall"
    with pytest.raises(CosServiceError) as e:
        client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up["UploadId"],
                                         MultipartUpload={"Part": list(reversed(etags))})
    assert e.value.get_error_code() == "InvalidPartOrder"
    client.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up["UploadId"])


def test_copy_and_deletes(client):
    client.put_object(Bucket=BUCKET, Key="copy/src key+%.txt", Body=b"copy me", Metadata={"x-cos-meta-a": "1"})
    src = {"Bucket": BUCKET, "Key": "copy/src key+%.txt", "Region": REGION}
    r = client.copy_object(Bucket=BUCKET, Key="copy/dst", CopySource=src)
    assert "ETag" in r and "CRC64" in r
    assert client.head_object(Bucket=BUCKET, Key="copy/dst")["x-cos-meta-a"] == "1"
    client.copy_object(Bucket=BUCKET, Key="copy/dst2", CopySource=src, CopyStatus="Replaced",
                       Metadata={"x-cos-meta-b": "2"})
    head = client.head_object(Bucket=BUCKET, Key="copy/dst2")
    assert head["x-cos-meta-b"] == "2" and "x-cos-meta-a" not in head
    client.delete_object(Bucket=BUCKET, Key="copy/dst")
    client.delete_object(Bucket=BUCKET, Key="copy/never-existed")
    with pytest.raises(CosServiceError) as e:
        client.head_object(Bucket=BUCKET, Key="copy/dst")
    assert e.value.get_status_code() == 404
    r = client.delete_objects(Bucket=BUCKET, Delete={"Object": [{"Key": "copy/dst2"}, {"Key": "copy/src key+%.txt"}],
                                                     "Quiet": "false"})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["copy/dst2", "copy/src key+%.txt"]
    assert client.list_objects(Bucket=BUCKET, Prefix="copy/").get("Contents") is None


def test_sse_c_round_trip_wrong_key_and_copy(client, coslocal):
    data = b"secret data " * 1000
    put = client.put_object(Bucket=BUCKET, Key="ssec/obj", Body=data, **ssec(KEY))
    assert put["x-cos-server-side-encryption-customer-algorithm"] == "AES256"
    assert put["ETag"].strip('"') != hashlib.md5(data).hexdigest()
    assert body_of(client.get_object(Bucket=BUCKET, Key="ssec/obj", **ssec(KEY))) == data
    head = client.head_object(Bucket=BUCKET, Key="ssec/obj", **ssec(KEY))
    assert head["x-cos-server-side-encryption-customer-key-MD5"] == ssec(KEY)["SSECustomerKeyMD5"]
    with pytest.raises(CosServiceError) as e:
        client.get_object(Bucket=BUCKET, Key="ssec/obj", **ssec(KEY2))
    assert (e.value.get_status_code(), e.value.get_error_code()) == (403, "AccessDenied")
    with pytest.raises(CosServiceError) as e:
        client.get_object(Bucket=BUCKET, Key="ssec/obj")
    assert e.value.get_error_code() == "SsecDecryptHeaderInvalid"
    # Re-encrypt under a new key by copy.
    src = {"Bucket": BUCKET, "Key": "ssec/obj", "Region": REGION}
    client.copy_object(Bucket=BUCKET, Key="ssec/copy", CopySource=src, CopyStatus="Replaced",
                       **ssec(KEY, "CopySource"), **ssec(KEY2))
    assert body_of(client.get_object(Bucket=BUCKET, Key="ssec/copy", **ssec(KEY2))) == data
    # The request log shows the key MD5 (never the key) on the SDK's requests.
    entries = [json.loads(line) for line in open(coslocal["log"])]
    puts = [e for e in entries if e["op"] == "PutObject" and e["key"] == "ssec/obj"]
    assert puts and puts[0]["sse"]["customer_key_md5"] == ssec(KEY)["SSECustomerKeyMD5"]
    assert ssec(KEY)["SSECustomerKey"] not in open(coslocal["log"]).read()


def test_sse_c_multipart(client):
    key = "ssec/mp"
    up = client.create_multipart_upload(Bucket=BUCKET, Key=key, **ssec(KEY))
    parts = [os.urandom(1024 * 1024), os.urandom(5000)]
    etags = []
    for n, p in enumerate(parts, 1):
        r = client.upload_part(Bucket=BUCKET, Key=key, Body=p, PartNumber=n, UploadId=up["UploadId"], **ssec(KEY))
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up["UploadId"], MultipartUpload={"Part": etags})
    assert body_of(client.get_object(Bucket=BUCKET, Key=key, **ssec(KEY))) == b"".join(parts)
    got = client.get_object(Bucket=BUCKET, Key=key, Range="bytes=1048570-1048600", **ssec(KEY))
    assert body_of(got) == b"".join(parts)[1048570:1048601]


def test_sse_cos_and_kms(client):
    data = b"sse-cos data"
    put = client.put_object(Bucket=BUCKET, Key="sse/cos", Body=data, ServerSideEncryption="AES256")
    assert put["x-cos-server-side-encryption"] == "AES256"
    assert client.head_object(Bucket=BUCKET, Key="sse/cos")["x-cos-server-side-encryption"] == "AES256"
    assert body_of(client.get_object(Bucket=BUCKET, Key="sse/cos")) == data
    put = client.put_object(Bucket=BUCKET, Key="sse/kms", Body=data, ServerSideEncryption="cos/kms")
    assert put["x-cos-server-side-encryption"] == "cos/kms"
    with pytest.raises(CosServiceError) as e:
        client.get_object(Bucket=BUCKET, Key="sse/cos", ServerSideEncryption="AES256")
    assert e.value.get_error_code() == "SSEHeaderNotAllowed"


def test_wrong_secret_is_refused(bad_client):
    with pytest.raises(CosServiceError) as e:
        bad_client.list_objects(Bucket=BUCKET)
    assert (e.value.get_status_code(), e.value.get_error_code()) == (403, "SignatureDoesNotMatch")
