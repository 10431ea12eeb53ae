"""The deployment files: docker compose against the Compose specification, serving files against
TF Serving's own protos (tensorflow-serving-api, test-only)."""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (``!reset``, ``!override``)."""


ComposeLoader.add_constructor("!reset", lambda loader, node: None)
ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: (
        loader.construct_mapping(node)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_sequence(node)
    ),
)


def compose_schema() -> dict:
    import importlib.resources

    path = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text(encoding="utf-8"))


def load_compose(name: str) -> dict:
    return yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.cpu.yml"])
def test_compose_files_follow_the_specification(name: str) -> None:
    import jsonschema

    jsonschema.validate(load_compose(name), compose_schema())


def test_compose_serves_the_repository_on_a_gpu() -> None:
    service = load_compose("docker-compose.yml")["services"]["tfserving"]
    assert service["image"].endswith("-gpu")
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert "${MODEL_REPOSITORY:-./models}:/models:ro" in service["volumes"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in service["command"])
    assert flags["model_config_file"] == "/models/models.config"
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0
    assert flags["enable_batching"] == "true"
    assert flags["allow_version_labels_for_unavailable_models"] == "true"
    assert flags["batching_parameters_file"].endswith("batching_parameters.txt")
    assert flags["monitoring_config_file"].endswith("monitoring.config")
    assert "AVAILABLE" in " ".join(service["healthcheck"]["test"])  # not just HTTP 200
    assert all(port.startswith("${TFS_BIND_ADDRESS:-127.0.0.1}:") for port in service["ports"])
    assert service["environment"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_compose_web_needs_a_token_and_its_tmpfs_holds_every_upload_slot() -> None:
    compose = load_compose("docker-compose.yml")
    service = compose["services"]["web"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in service["command"])
    slots = int(flags["max-receiving"]) + int(flags["max-waiting"]) + int(flags["concurrency"])
    (tmpfs,) = service["tmpfs"]
    mount, options = tmpfs.split(":", 1)
    size_mb = int(dict(o.split("=") for o in options.split(","))["size"].removesuffix("m"))
    assert flags["upload-dir"].startswith(mount + "/")
    assert size_mb >= float(flags["max-upload-mb"]) * slots
    assert "insecure" not in flags and flags["host"] == "0.0.0.0"
    assert service["environment"]["DEEPFAKE_WEB_TOKEN_FILE"] == "/run/secrets/web_token"
    assert service["secrets"] == ["web_token"] and "web_token" in compose["secrets"]
    assert service["ports"] == ["${WEB_BIND_ADDRESS:-127.0.0.1}:${WEB_PORT:-8080}:8080"]


def test_cpu_override_drops_the_gpu() -> None:
    service = load_compose("docker-compose.cpu.yml")["services"]["tfserving"]
    assert not service["image"].endswith("-gpu")
    assert service["deploy"] is None  # !reset


def test_models_config_parses_with_tf_servings_proto() -> None:
    pytest.importorskip("tensorflow_serving")
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(
        (ROOT / "serving/models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    assert config.model_config_list.config[0].name == "deepfake_detector"


def test_batching_and_monitoring_files_parse() -> None:
    # tensorflow-serving-api does not ship these two messages; the project's copy has TF Serving's
    # field names (all the text format uses) and numbers.
    from google.protobuf import text_format

    from deepfake_client._proto import tfs_pb2

    batching = text_format.Parse(
        (ROOT / "serving/batching_parameters.txt").read_text(), tfs_pb2.BatchingParameters()
    )
    assert batching.max_batch_size.value == max(batching.allowed_batch_sizes)
    assert batching.batch_timeout_micros.value <= 10_000  # a few ms
    monitoring = text_format.Parse(
        (ROOT / "serving/monitoring.config").read_text(), tfs_pb2.MonitoringConfig()
    )
    assert monitoring.prometheus_config.enable


def test_warmup_covers_every_allowed_batch_size() -> None:
    from export.warmup import DEFAULT_BATCH_SIZES, ENCODED_BATCH_SIZES

    text = (ROOT / "serving/batching_parameters.txt").read_text()
    allowed = {
        int(line.split(":")[1]) for line in text.splitlines() if line.startswith("allowed_batch_sizes")
    }
    assert set(DEFAULT_BATCH_SIZES) == set(ENCODED_BATCH_SIZES) == allowed
