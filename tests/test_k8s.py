"""The Kubernetes manifests, validated offline against the Kubernetes API's own models (the
``kubernetes`` client's generated classes: every field known, every required field present)."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"

kubernetes = pytest.importorskip("kubernetes")


def documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def model_class(api_version: str, kind: str) -> type:
    group_version = api_version.split("/")[-1]
    group = api_version.split("/")[0] if "/" in api_version else ""
    prefix = group_version.capitalize()
    name = f"{prefix}{kind}"
    cls = getattr(kubernetes.client.models, name, None)
    assert cls is not None, f"unknown kind {api_version}/{kind} (group {group!r})"
    return cls


def check(value: object, type_name: str, where: str) -> None:
    """Walk ``value`` against the client's model type ``type_name``; fail on unknown fields."""
    if type_name in ("str", "int", "bool", "float", "object", "datetime", "date"):
        return
    if type_name.lower().startswith("list["):
        assert isinstance(value, list), f"{where}: expected a list"
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{where}[{i}]")
        return
    if type_name.lower().startswith(("dict(", "dict[")):
        assert isinstance(value, dict), f"{where}: expected a mapping"
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        for key, item in value.items():
            check(item, inner, f"{where}.{key}")
        return
    cls = getattr(kubernetes.client.models, type_name)
    assert isinstance(value, dict), f"{where}: expected a {type_name} mapping"
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    unknown = sorted(set(value) - set(by_json))
    assert not unknown, f"{where}: unknown field(s) {unknown} for {type_name}"
    for key, item in value.items():
        check(item, cls.openapi_types[by_json[key]], f"{where}.{key}")


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_a_valid_object(doc: dict) -> None:
    cls = model_class(doc["apiVersion"], doc["kind"])
    check(doc, cls.__name__, doc["kind"])
    # Required fields and value types: the generated (pydantic) models refuse what the API would.
    assert cls.from_dict(doc) is not None


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_replicas_serve_the_shared_repository_like_compose() -> None:
    deployment = next(
        d for d in documents() if d["kind"] == "Deployment" and d["metadata"]["name"] == "tfserving"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    version = re.search(r"^TF_SERVING_VERSION=(.+)$", (ROOT / ".env").read_text(), re.M).group(1)
    assert container["image"] == f"tensorflow/serving:{version}-gpu"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text().replace("!reset", ""))
    compose_flags = {a.split("=")[0] for a in compose["services"]["tfserving"]["command"]}
    assert {a.split("=")[0] for a in container["args"]} == compose_flags
    assert "AVAILABLE" in " ".join(container["readinessProbe"]["exec"]["command"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_configmap_matches_the_serving_files() -> None:
    config = next(d for d in documents() if d["kind"] == "ConfigMap")
    strip = lambda text: [x for x in text.splitlines() if x.strip() and not x.startswith("#")]  # noqa: E731
    assert strip(config["data"]["batching_parameters.txt"]) == strip(
        (ROOT / "serving/batching_parameters.txt").read_text()
    )
    assert strip(config["data"]["monitoring.config"]) == strip(
        (ROOT / "serving/monitoring.config").read_text()
    )


def test_autoscaler_targets_tfserving_and_keeps_the_disruption_budget() -> None:
    hpa = next(d for d in documents() if d["kind"] == "HorizontalPodAutoscaler")
    pdb = next(d for d in documents() if d["kind"] == "PodDisruptionBudget")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tfserving",
    }
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]  # a drain never takes the last replica
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300  # loads are slow


def test_the_repository_volume_does_not_promise_s3() -> None:
    text = (K8S / "pvc.yaml").read_text()
    assert "s3:// does NOT work" in text and "gs://" in text


def _named(kind: str, name: str) -> dict:
    return next(d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def _headless_target(server: str) -> None:
    """``dns:///<service>:<port>`` names the headless service of the replicas, on its gRPC port."""
    host, port = server.removeprefix("dns:///").rsplit(":", 1)
    service = _named("Service", host)
    assert service["spec"].get("clusterIP") == "None"  # one DNS record per ready pod
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]


def test_the_gateway_runs_as_in_compose_over_every_replica() -> None:
    deployment = _named("Deployment", "deepfake-web")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text().replace("!reset", ""))["services"][
        "web"
    ]
    assert container["args"] == compose["command"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DEEPFAKE_LABEL"] == compose["environment"]["DEEPFAKE_LABEL"]
    _headless_target(env["DEEPFAKE_SERVER"])
    # the token is a file from a Secret, as compose's secret
    mount = next(
        m for m in container["volumeMounts"] if env["DEEPFAKE_WEB_TOKEN_FILE"].startswith(m["mountPath"])
    )
    assert next(v for v in pod["volumes"] if v["name"] == mount["name"])["secret"]["secretName"]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    # the upload space is compose's tmpfs size
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    size = next(v for v in pod["volumes"] if v["name"] == tmp["name"])["emptyDir"]["sizeLimit"]
    assert size == next(t for t in compose["tmpfs"] if t.startswith("/tmp:")).split("size=")[1].replace(
        "m", "Mi"
    )
    service = _named("Service", "deepfake-web")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_bulk_job_runs_a_real_deepfake_bulk_command() -> None:
    pytest.importorskip("ray")
    from serving.bulk.cli import build_parser

    job = _named("Job", "deepfake-bulk-scan")
    assert job["spec"]["suspend"] is True  # kubectl apply -k starts nothing
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])  # the Job's arguments are deepfake-bulk's
    assert args.command == "scan" and args.workers >= 1
    for server in args.server:
        _headless_target(server)
    assert any(m["mountPath"] == "/dev/shm" for m in container["volumeMounts"])  # Ray's object store
    dockerfile = (ROOT / "Dockerfile.bulk").read_text()
    assert "[bulk]" in dockerfile and 'ENTRYPOINT ["deepfake-bulk"]' in dockerfile
    assert container["image"].startswith("deepfake-serving-bulk")


TRAINING = K8S / "training"


def training_documents() -> list[dict]:
    return [d for d in yaml.safe_load_all((TRAINING / "train-job.yaml").read_text()) if d]


@pytest.mark.parametrize("doc", training_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_training_manifest_is_a_valid_object(doc: dict) -> None:
    cls = model_class(doc["apiVersion"], doc["kind"])
    check(doc, cls.__name__, doc["kind"])
    assert cls.from_dict(doc) is not None


def test_multi_worker_job_gives_each_pod_a_tf_config_of_the_others(tmp_path) -> None:
    """The pod's own shell, run here for every index, writes the TF_CONFIG training.distribute takes."""
    import json
    import os
    import subprocess

    from training.cli import train_parser
    from training.distribute import parse_tf_config

    docs = {d["kind"]: d for d in training_documents()}
    job, service, claim = docs["Job"], docs["Service"], docs["PersistentVolumeClaim"]
    listed = yaml.safe_load((TRAINING / "kustomization.yaml").read_text())["resources"]
    assert listed == ["train-job.yaml"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["suspend"] is True and spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"]  # every worker at once, or the collectives wait
    assert service["spec"]["clusterIP"] == "None" and pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["WORKERS"]) == spec["completions"]
    assert env["JOB_NAME"] == job["metadata"]["name"] and env["SERVICE"] == service["metadata"]["name"]
    script, zeroth, *argv = container["args"]
    args = train_parser().parse_args(argv)  # the Job's arguments are deepfake-train's
    assert args.distribute == "multi_worker" and zeroth == "deepfake-train"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every worker reads the chief's backup
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args.out.startswith(mounts["data"]) and args.data.startswith(mounts["data"])

    # the real script with a stand-in deepfake-train on PATH that prints what it was given
    (tmp_path / "deepfake-train").write_text('#!/bin/sh\nprintf "%s\\n" "$TF_CONFIG"\n')
    (tmp_path / "deepfake-train").chmod(0o755)
    hosts = set()
    for index in range(spec["completions"]):
        run_env = {**env, "JOB_COMPLETION_INDEX": str(index), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
        done = subprocess.run(
            [*container["command"], script, zeroth, *argv], env=run_env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        cluster = parse_tf_config(done.stdout)
        assert (cluster.task_index, cluster.workers, cluster.chief) == (
            index,
            spec["completions"],
            index == 0,
        )
        workers = json.loads(done.stdout)["cluster"]["worker"]
        assert workers[index] == f"{job['metadata']['name']}-{index}.{pod['subdomain']}:12345"
        hosts.add(tuple(workers))
    assert len(hosts) == 1  # every pod lists the same cluster
    assert container["ports"][0]["containerPort"] == service["spec"]["ports"][0]["port"] == 12345
