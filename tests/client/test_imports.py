"""``import deepfake_client`` (and its client and CLI modules) never pulls in TensorFlow."""

from __future__ import annotations

import subprocess
import sys


def test_import_leaves_tensorflow_out() -> None:
    code = (
        "import sys, deepfake_client, deepfake_client.client, deepfake_client.cli, deepfake_client.aio, "
        "deepfake_client.transport.grpc, deepfake_client.transport.rest\n"
        "from deepfake_client import DetectorClient, AsyncDetectorClient\n"
        "heavy = ('tensorflow', 'keras', 'tensorflow_serving')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_bare_import_is_light() -> None:
    code = (
        "import sys, deepfake_client\nprint(sorted(m for m in ('cv2', 'grpc', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
