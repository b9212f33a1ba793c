"""Fixtures for the coslocal interop tests: start the built coslocal binary with a
self-signed CA and hand out an official-SDK client configured against it."""
import os
import pathlib
import signal
import subprocess
import tempfile

import pytest
from qcloud_cos import CosConfig, CosS3Client

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUCKET = "interop-1250000000"
REGION = "ap-guangzhou"
SECRET_ID = "AKIDinteropcoslocal"
SECRET_KEY = "interop-secret-key"


@pytest.fixture(scope="session")
def coslocal():
    binary = os.environ.get("COSLOCAL_BIN", str(ROOT / "target" / "debug" / "coslocal"))
    if not os.path.exists(binary):
        pytest.fail(f"coslocal binary not found at {binary}: run `cargo build --bin coslocal` or set COSLOCAL_BIN")
    tmp = tempfile.TemporaryDirectory(prefix="coslocal-interop-")
    ca = os.path.join(tmp.name, "ca.pem")
    log = os.path.join(tmp.name, "requests.jsonl")
    env = dict(os.environ, COSLOCAL_SECRET_ID=SECRET_ID, COSLOCAL_SECRET_KEY=SECRET_KEY)
    proc = subprocess.Popen(
        [binary, "--data-dir", os.path.join(tmp.name, "data"), "--bucket", BUCKET, "--region", REGION,
         "--tls-self-signed", "--ca-out", ca, "--request-log", log],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = proc.stdout.readline()
    if "endpoint=" not in line:
        proc.kill()
        pytest.fail(f"coslocal did not become ready: {line!r}")
    endpoint = line.split("endpoint=")[1].split()[0]
    port = int(endpoint.rsplit(":", 1)[1])
    yield {"port": port, "ca": ca, "log": log, "endpoint": endpoint}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, "coslocal exits cleanly on SIGTERM"
    tmp.cleanup()


@pytest.fixture(scope="session")
def client(coslocal):
    config = CosConfig(Region=REGION, SecretId=SECRET_ID, SecretKey=SECRET_KEY, Scheme="https",
                       IP="127.0.0.1", Port=coslocal["port"], VerifySSL=coslocal["ca"])
    return CosS3Client(config, retry=0)


@pytest.fixture(scope="session")
def bad_client(coslocal):
    config = CosConfig(Region=REGION, SecretId=SECRET_ID, SecretKey="not-the-secret", Scheme="https",
                       IP="127.0.0.1", Port=coslocal["port"], VerifySSL=coslocal["ca"])
    return CosS3Client(config, retry=0)
