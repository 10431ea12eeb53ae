"""The project's shape: import direction, a TensorFlow-free client, one pinned TF Serving version."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Imports point one way: deepfake_client <- training <- export <- serving.
LAYERS = ["deepfake_client", "training", "export", "serving"]
PACKAGE_DIRS = {
    "deepfake_client": ROOT / "client" / "deepfake_client",
    "training": ROOT / "training",
    "export": ROOT / "export",
    "serving": ROOT / "serving",
}
# Modules that run on a Docker host or in a backend service: never TensorFlow, at any depth.
TF_FREE = [
    "deepfake_client",
    "deepfake_client.client",
    "deepfake_client.aio",
    "deepfake_client.cli",
    "deepfake_client.transport.grpc",
    "deepfake_client.transport.rest",
    "deepfake_client.web.app",
    "deepfake_client.web.cli",
    "export.publish",
    "export.modelconfig",
    "export.history",
    "serving.rollout",
    "serving.cli",
]


def imported_packages(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_one_way(package: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    forbidden = set(LAYERS) - allowed
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & forbidden)
        for path in PACKAGE_DIRS[package].rglob("*.py")
        if imported_packages(path) & forbidden
    }
    assert not offenders, f"{package} imports a later layer: {offenders}"


def test_client_never_imports_tensorflow_in_source() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in PACKAGE_DIRS["deepfake_client"].rglob("*.py")
        if imported_packages(path) & {"tensorflow", "keras", "tensorflow_serving"}
    ]
    assert not offenders


@pytest.mark.parametrize("module", TF_FREE)
def test_module_import_leaves_tensorflow_out(module: str) -> None:
    code = (
        f"import sys\n"
        f"import {module}\n"
        f"tf = ('tensorflow', 'keras', 'tensorflow_serving')\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in tf)\n"
        f"print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"import {module} pulled in {result.stdout} {result.stderr[-2000:]}"


def pinned_serving_version() -> str:
    match = re.search(r"^TF_SERVING_VERSION=(\d+\.\d+\.\d+)$", (ROOT / ".env").read_text(), re.M)
    assert match, ".env must pin TF_SERVING_VERSION=X.Y.Z"
    return match.group(1)


def test_training_tensorflow_matches_the_serving_image() -> None:
    major, minor, _ = pinned_serving_version().split(".")
    pyproject = (ROOT / "pyproject.toml").read_text()
    pins = re.findall(r'"tensorflow(?:-serving-api)?>=([\d.]+),<([\d.]+)"', pyproject)
    assert pins, "pyproject.toml must pin tensorflow"
    for low, high in pins:
        assert low == f"{major}.{minor}", f"tensorflow>={low} but the TF Serving image is {major}.{minor}"
        assert high == f"{major}.{int(minor) + 1}", (
            f"tensorflow<{high} admits another minor than {major}.{minor}"
        )


def test_installed_tensorflow_matches_the_serving_image() -> None:
    tf_version = pytest.importorskip("tensorflow").__version__
    assert tf_version.split(".")[:2] == pinned_serving_version().split(".")[:2]


def test_images_use_the_pinned_version() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "tensorflow/serving:${TF_SERVING_VERSION:?" in compose
    dockerfile = (ROOT / "Dockerfile.gpu").read_text()
    assert f"ARG TF_SERVING_VERSION={pinned_serving_version()}\n" in dockerfile
    assert "FROM tensorflow/serving:${TF_SERVING_VERSION}-gpu" in dockerfile
    k8s = (ROOT / "deploy" / "k8s" / "deployment.yaml").read_text()
    assert f"image: tensorflow/serving:{pinned_serving_version()}-gpu" in k8s
