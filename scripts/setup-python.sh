#!/usr/bin/env bash
# Creates /work/main/.venv with the official COS Python SDK and pytest, for the coslocal
# interop tests (tests/interop). Idempotent: re-running only installs what is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import qcloud_cos, pytest' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check cos-python-sdk-v5 pytest
fi
"$VENV/bin/python" -c 'import qcloud_cos, pytest; print("venv ready:", qcloud_cos.__file__)'
