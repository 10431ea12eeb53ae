"""The dev server's behaviour held against TF Serving's sources, one difference at a time.

Each test names the TF Serving source that decides the behaviour: main.cc (flags), server.cc
(health service, bind address), server_core.cc (reload waits for new models), the storage path
source (a missing base path), http_server.cc / http_rest_api_handler.cc (methods, CORS, metrics),
json_tensor.cc (rapidjson's parse flags) and util.cc (metrics families).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from serving.devserver.flags import TF_SERVING_FLAGS

pytestmark = [pytest.mark.needs_tf]

MODEL = "half_plus_two"
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rest(hpt_server):
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{hpt_server.rest_port}", timeout=30) as client:
        yield client


# ------------------------------------------------------------------ flags (main.cc)


def test_every_tf_serving_flag_is_accepted_with_help():
    from serving.devserver.cli import build_parser

    assert len(TF_SERVING_FLAGS) == 48
    text = build_parser().format_help()
    for flag in TF_SERVING_FLAGS:
        assert f"--{flag.name}" in text and flag.help
    assert "tensorflow-model-server" in text  # --help points at the real server's APT package
    args = build_parser().parse_args(
        [
            "--enable_model_warmup=true",
            "--num_unload_threads=2",
            "--per_process_gpu_memory_fraction=0.9",
            "--enable_batching",
        ]
    )
    assert args.enable_model_warmup and args.enable_batching and args.num_unload_threads == 2


def _cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "serving.devserver", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--model_base_path=/x", "--port=0"], "At least one of server_options.grpc_port or"),
        (["--port=1", "--rest_api_port=1", "--model_base_path=/x"], "cannot be the same"),
        ([], "Both server_options.model_base_path and server_options.model_config_file are empty!"),
        (
            ["--model_base_path=/x", "--batching_parameters_file=b"],
            "without setting server_options.enable_batching",
        ),
        (
            [
                "--model_base_path=/x",
                "--tensorflow_intra_op_parallelism=1",
                "--tensorflow_inter_op_parallelism=1",
                "--tensorflow_session_parallelism=1",
            ],
            "You cannot configure all.",
        ),
        (["--model_base_path=/x", "--enable_batching=maybe"], "expected true or false"),
    ],
)
def test_flag_refusals_are_one_line_exit_2(argv, text):
    result = _cli(*argv)
    assert result.returncode == 2 and text in result.stderr and "Traceback" not in result.stderr


def test_version_flag_and_no_native_noise():
    result = _cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("TensorFlow ModelServer: ")
    assert "TensorFlow Library: 2.20" in result.stdout
    for noise in ("cuInit", "cuDNN", "cuFFT", "computation placer", "absl::InitializeLog"):
        assert noise not in result.stderr


@pytest.mark.slow
def test_cli_serves_with_ignored_flags_noticed_and_stops_promptly_on_sigterm(tmp_path, half_plus_two):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from serving.devserver.launcher import start_devserver, stop_devserver

    base = tmp_path / "hpt"
    shutil.copytree(half_plus_two, base / "1")
    server = start_devserver(
        None,
        tmp_path / "log",
        f"--model_name={MODEL}",
        f"--model_base_path={base}",
        "--num_unload_threads=2",
        "--per_process_gpu_memory_fraction=0.9",
        "--enable_model_warmup=true",
        "--enable_grpc_healthcheck_service",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=60000",
        "--tensorflow_intra_op_parallelism=1",
        "--tensorflow_inter_op_parallelism=1",
        model=MODEL,
        labels_at_startup=False,
    )
    try:
        log = server.log()
        assert "notice: accepted for compatibility" in log
        assert "--num_unload_threads, --per_process_gpu_memory_fraction" in log
        for noise in ("cuInit", "cuDNN", "cuFFT", "computation placer"):
            assert noise not in log
        channel = grpc.insecure_channel(server.grpc_target)
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "ModelService", "PredictionService"):  # server.cc's names
            assert health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status == 1
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError):  # new calls are refused at once
            health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        assert server.process.wait(30) == 0  # one SIGTERM, as docker sends
        assert time.monotonic() - started < 15
        channel.close()
    finally:
        stop_devserver(server)


# ------------------------------------------------------------------ server_core.cc, storage path source


def _config(path: pathlib.Path, models: dict[str, pathlib.Path]) -> None:
    entries = "".join(
        f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }} '
        for name, base in models.items()
    )
    path.write_text(f"model_config_list {{ {entries}}}\n")


def test_reload_config_returns_once_the_new_model_is_available(tmp_path, half_plus_two, half_plus_three):
    from deepfake_client._proto import tfs_pb2
    from serving.devserver.server import DevServer, ServerOptions

    shutil.copytree(half_plus_two, tmp_path / "two" / "1")
    config = tmp_path / "models.config"
    _config(config, {"two": tmp_path / "two"})
    server = DevServer(ServerOptions(host="127.0.0.1", port=0, model_config_file=str(config)))
    server.start()
    try:
        shutil.copytree(half_plus_three, tmp_path / "three" / "1")
        request = tfs_pb2.ReloadConfigRequest()
        for name in ("two", "three"):
            model = request.config.model_config_list.config.add()
            model.name, model.base_path, model.model_platform = name, str(tmp_path / name), "tensorflow"
        server.service.reload_config(request)  # server_core.cc: WaitUntilModelsAvailable(new_models)
        assert server.manager.states("three") == {1: "AVAILABLE"}
    finally:
        server.stop(grace_s=5)


def test_missing_base_path_is_logged_and_start_up_waits_for_it(tmp_path, half_plus_two, caplog):
    from serving.devserver.server import DevServer, ServerOptions

    shutil.copytree(half_plus_two, tmp_path / "two" / "1")
    config = tmp_path / "models.config"
    _config(config, {"two": tmp_path / "two", "late": tmp_path / "late"})
    server = DevServer(ServerOptions(host="127.0.0.1", port=0, model_config_file=str(config)))
    started = threading.Event()
    thread = threading.Thread(target=lambda: (server.start(), started.set()), daemon=True)
    thread.start()
    try:
        time.sleep(2.5)
        assert not started.is_set() and server.grpc_port == 0  # no port opened yet
        assert "Could not find base path" in caplog.text and str(tmp_path / "late") in caplog.text
        assert server.manager.states("two") == {}  # the whole poll failed, as in TF Serving
        shutil.copytree(half_plus_two, tmp_path / "late" / "1")
        assert started.wait(60) and server.grpc_port
        assert server.manager.states("late") == {1: "AVAILABLE"}
    finally:
        server.stop(grace_s=5)


# ------------------------------------------------------------------ REST rules


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_malformed_request_json(rest, method):
    reply = rest.request(method, f"/v1/models/{MODEL}")
    assert reply.status_code == 400 and reply.headers["content-type"].startswith("application/json")
    assert reply.json() == {"error": f"Malformed request: {method} /v1/models/{MODEL}"}


def test_trailing_data_is_ignored_and_duplicate_keys_first_win(rest):
    # rapidjson's kParseStopWhenDoneFlag and FindMember.
    body = b'{"instances": [1.0, 2.0]} trailing'
    assert rest.post(f"/v1/models/{MODEL}:predict", content=body).json() == {"predictions": [2.5, 3.0]}
    body = b'{"instances": [1.0], "instances": [5.0, 6.0]}'
    assert rest.post(f"/v1/models/{MODEL}:predict", content=body).json() == {"predictions": [2.5]}
    reply = rest.post(f"/v1/models/{MODEL}:predict", content=b'{"instances": [1.0,]}')
    assert reply.status_code == 400 and reply.json()["error"].startswith("JSON Parse error: Invalid value.")


def test_integers_above_2_24_go_to_float_inputs(rest):
    reply = rest.post(f"/v1/models/{MODEL}:predict", json={"instances": [16777217, 4.0]})
    assert reply.status_code == 200 and reply.json()["predictions"][1] == 4.0


def test_metadata_has_signature_defaults(rest):
    meta = rest.get(f"/v1/models/{MODEL}/metadata").json()
    assert meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["defaults"] == {}


def test_every_rest_call_is_counted_and_predict_is_lower_case(rest, hpt_server):
    from serving.devserver.metrics import REQUEST_COUNT

    metrics = hpt_server.metrics
    before = metrics.value(REQUEST_COUNT, model_name="nope", status="NOT_FOUND")
    ok_before = metrics.value(REQUEST_COUNT, model_name=MODEL, status="INVALID_ARGUMENT")
    rest.post("/v1/models/nope:predict", json={"instances": [1.0]})
    rest.post(f"/v1/models/{MODEL}:predict", json={"instances": ["x"]})
    assert metrics.value(REQUEST_COUNT, model_name="nope", status="NOT_FOUND") == before + 1
    assert metrics.value(REQUEST_COUNT, model_name=MODEL, status="INVALID_ARGUMENT") == ok_before + 1
    rest.post(
        f"/v1/models/{MODEL}:regress", json={"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]}
    )
    text = rest.get("/monitoring/prometheus/metrics").text
    assert f'request_latency_count{{model_name="{MODEL}",API="predict",entrypoint="REST"}}' in text
    assert f'request_latency_count{{model_name="{MODEL}",API="regress",entrypoint="REST"}}' in text
    assert f'runtime_latency_count{{model_name="{MODEL}",API="Predict",runtime="TF1"}}' in text
    assert ":tensorflow:serving:model_warmup_latency_bucket" in text
    assert (
        f':tensorflow:serving:model_warmup_records_read{{model_path="{hpt_server.repository_base / "123"}"'
        in text
    )


def test_cors_and_preflight(serve_inprocess, half_plus_two):
    import httpx

    from serving.devserver.rest import CORS_HEADERS

    server = serve_inprocess(MODEL, {1: half_plus_two})
    assert server.options.rest_api_enable_cors_support is False
    from serving.devserver.server import DevServer, ServerOptions

    cors = DevServer(
        ServerOptions(
            host="127.0.0.1",
            port=0,
            model_config_file=server.options.model_config_file,
            rest_api_enable_cors_support=True,
        )
    )
    cors.start(rest=True)
    try:
        url = f"http://127.0.0.1:{cors.rest_port}/v1/models/{MODEL}"
        reply = httpx.get(url, timeout=10)
        assert all(reply.headers[k] == v for k, v in CORS_HEADERS.items())
        assert httpx.options(url, headers={"Origin": "https://a.example"}, timeout=10).status_code == 200
        assert httpx.options(url, timeout=10).status_code == 400  # "Origin header is missing"
        plain = httpx.get(f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}", timeout=10)
        assert "access-control-allow-origin" not in plain.headers
    finally:
        cors.stop(grace_s=5)


def test_rest_timeout_covers_the_model_run_only(serve_inprocess, probe_versions):
    import httpx

    from serving.devserver.server import DevServer, ServerOptions

    base = serve_inprocess("probe", {1: probe_versions[1]})
    server = DevServer(
        ServerOptions(
            host="127.0.0.1",
            port=0,
            model_config_file=base.options.model_config_file,
            rest_api_timeout_in_ms=1500,
        )
    )
    server.start(rest=True)
    try:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/probe:predict"
        big = {"instances": np.zeros(400_000, np.float32).tolist()}  # parsing is not timed
        assert httpx.post(url, json=big, timeout=60).status_code == 200
        slow = {"signature_name": "slow", "instances": [{"x": 1.0, "delay_ms": 3000}]}
        reply = httpx.post(url, json=slow, timeout=60)
        assert reply.status_code == 504 and reply.json() == {"error": "Deadline Exceeded"}
    finally:
        server.stop(grace_s=5)


# ------------------------------------------------------------------ the numeric fast path


@pytest.mark.parametrize(
    "body",
    [
        {"instances": np.arange(600).reshape(200, 3).tolist()},
        {"inputs": {"a": (np.arange(1200) / 7).reshape(600, 2).tolist(), "b": list(range(600))}},
        {"instances": [{"a": [i / 3, -i * 1e-7], "b": i} for i in range(300)]},
    ],
)
def test_fast_path_equals_the_exact_path(body):
    from deepfake_client._proto import tfs_pb2
    from serving.devserver import json_numeric
    from serving.devserver.json_tensor import parse_predict_request

    single = "instances" in body and not isinstance(body["instances"][0], dict)
    infos = (
        {"x": tfs_pb2.TensorInfo(dtype=tfs_pb2.DT_INT32)}
        if single
        else {
            "a": tfs_pb2.TensorInfo(dtype=tfs_pb2.DT_FLOAT),
            "b": tfs_pb2.TensorInfo(dtype=tfs_pb2.DT_INT64),
        }
    )
    raw = json.dumps(body).encode()
    _, fast, _ = parse_predict_request(raw, lambda s: infos)
    original = json_numeric.MIN_SPAN
    json_numeric.MIN_SPAN = 1 << 40  # the exact path only
    try:
        _, exact, _ = parse_predict_request(raw, lambda s: infos)
    finally:
        json_numeric.MIN_SPAN = original
    assert fast.keys() == exact.keys()
    for name in fast:
        assert fast[name].dtype == exact[name].dtype and np.array_equal(fast[name], exact[name])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"[" + b"1," * 400 + b"01]", "JSON Parse error"),
        (b"[" + b"[1,2]," * 100 + b"[1]]", "Expecting tensor size"),
        (b"[" + b"1," * 400 + b"1.5]", "is not of expected type: int32"),
        (b"[" + b"1," * 400 + b"4294967296]", "is not of expected type: int32"),
    ],
)
def test_fast_path_leaves_bad_arrays_to_the_exact_errors(text, error):
    from deepfake_client._proto import tfs_pb2
    from serving.devserver.json_tensor import parse_predict_request
    from serving.devserver.status import ServingError

    with pytest.raises(ServingError) as caught:
        parse_predict_request(
            b'{"instances": ' + text + b"}", lambda s: {"x": tfs_pb2.TensorInfo(dtype=tfs_pb2.DT_INT32)}
        )
    assert error in caught.value.message
