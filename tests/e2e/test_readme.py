"""Every command README.md shows is run here (or by CI: the two quick-start commands), with only
host names, data paths and sizes swapped for local ones."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import orjson
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BIN = pathlib.Path(sys.executable).parent

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def commands(text: str, program: str) -> list[str]:
    blocks = [block.replace("\\\n", " ") for block in code_blocks(text, "bash")]  # continued lines joined
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(program)]


def run(command: str, cwd: pathlib.Path, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    argv[0] = str(BIN / argv[0])
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    return result


def make_run(path: pathlib.Path, seed: int) -> pathlib.Path:
    from tests.conftest import tiny_keras_model

    path.mkdir(parents=True)
    tiny_keras_model(seed=seed).save(path / "model.keras")
    (path / "run.json").write_bytes(orjson.dumps({"backbone": "tiny", "crop_margin": 0.3, "threshold": 0.5}))
    return path


def test_quick_start_commands_are_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- ci:demo -->" in README and "<!-- ci:test -->" in README
    assert "command_after demo" in ci and "command_after test" in ci


def test_client_python_example(devserver, face_video: pathlib.Path, capsys) -> None:
    (snippet,) = code_blocks(section("Using the client"), "python")
    assert 'DetectorClient("grpc://tfserving:8500")' in snippet  # stable by default
    code = snippet.replace("grpc://tfserving:8500", devserver.grpc_url).replace("upload.mp4", str(face_video))
    exec(compile(code, "README.md", "exec"), {})
    label, score, version = capsys.readouterr().out.split()
    assert label in ("FAKE", "REAL") and 0.0 <= float(score) <= 1.0 and version == "1"


def test_client_cli_examples(devserver, face_video, face_image, tmp_path: pathlib.Path) -> None:
    import cv2

    shutil.copy(face_video, tmp_path / "clip.mp4")
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "face.png"), cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))
    (tmp_path / "videos").mkdir()
    shutil.copy(face_video, tmp_path / "videos" / "a.mp4")
    scans = commands(section("Using the client"), "deepfake-scan")
    assert len(scans) == 3
    for command in scans:
        command = command.replace("grpc://tfserving:8500", devserver.grpc_url)
        command = command.replace("http://tfserving:8501", devserver.rest_url)
        # no shell here: the redirection is done below
        command, redirect, target = re.fullmatch(r"(.*?)(?:\s*(>>|>)\s*(\S+))?", command).groups()
        out = run(command, tmp_path).stdout
        if redirect:
            with (tmp_path / target).open("a" if redirect == ">>" else "w") as handle:
                handle.write(out)
        if "--resume" in command:
            assert out == ""  # both files already have a verdict in verdicts.jsonl
        elif "--json" in command:
            rows = [json.loads(line) for line in out.splitlines()]
            assert len(rows) == 2 and {r["label"] for r in rows} <= {"FAKE", "REAL"}
        else:
            lines = out.splitlines()
            assert lines[0] == "filename,label,error" and lines[1].startswith("a.mp4,")
    assert len((tmp_path / "verdicts.jsonl").read_text().splitlines()) == 2


def test_client_installs_without_tensorflow(tmp_path: pathlib.Path) -> None:
    """`pip install ./client` in a fresh virtual environment pulls in no TensorFlow."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(ROOT / "client")], capture_output=True, text=True
    )
    if pip.returncode != 0 and "Could not find a version" in pip.stderr:
        pytest.skip(f"no package index reachable: {pip.stderr[-300:]}")
    assert pip.returncode == 0, pip.stderr[-2000:]
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list"], capture_output=True, text=True
    ).stdout.lower()
    assert "tensorflow" not in listed and "keras" not in listed
    subprocess.run([str(venv / "bin" / "deepfake-scan"), "--help"], check=True, capture_output=True)


def test_production_publish_command(tmp_path: pathlib.Path) -> None:
    (command,) = commands(section("Production: TF Serving on a GPU server"), "deepfake-rollout")
    make_run(tmp_path / "runs" / "r1", seed=1)
    result = run(command, tmp_path)
    # Publishing a run exports it with TensorFlow: its native start-up lines stay off the terminal.
    assert all(line.startswith("deepfake-rollout: ") for line in result.stderr.splitlines()), result.stderr
    config = (tmp_path / "models" / "models.config").read_text()
    assert 'base_path: "/models/deepfake_detector"' in config  # the path TF Serving sees in the container
    assert (tmp_path / "models" / "deepfake_detector" / "1" / "saved_model.pb").is_file()


def test_rollout_commands(tmp_path: pathlib.Path, devserver_launcher) -> None:
    from serving.rollout import Rollout

    start, stop = devserver_launcher
    make_run(tmp_path / "runs" / "r1", seed=1)
    make_run(tmp_path / "runs" / "r2", seed=2)
    Rollout(repository=tmp_path / "models").publish(tmp_path / "runs" / "r1")
    server = start(
        tmp_path / "models",
        tmp_path / "models" / "models.config",
        tmp_path / "server.log",
        "--allow_version_labels_for_unavailable_models=true",
    )
    try:
        steps = commands(section("Rolling out a new model version"), "deepfake-rollout")
        names = [shlex.split(c)[3] for c in steps]
        assert names == ["publish", "canary", "promote", "rollback", "status", "canary", "abort"]
        results = [run(c, tmp_path, {"DEEPFAKE_SERVER": server.grpc_url}).stdout for c in steps]
        status = json.loads(results[4])
        assert status["published"] == [1, 2] and status["labels"] == {"stable": 1}
        assert status["server"]["1"] == "AVAILABLE"
        assert [r["action"] for r in status["history"]][-2:] == ["rollback", "retire"]
        entry = Rollout(repository=tmp_path / "models").entry()
        assert dict(entry.labels) == {"stable": 1} and entry.versions == (1,)  # aborted: 2 not served
    finally:
        stop(server)


def test_training_commands(tmp_path: pathlib.Path) -> None:
    from training.synthetic import generate_dataset

    generate_dataset(tmp_path / "data", 6, frames=6)
    steps = commands(section("Training on real data sets"), "deepfake-")
    assert [shlex.split(c)[0] for c in steps] == [
        "deepfake-prepare",
        "deepfake-train",
        "deepfake-evaluate",
        "deepfake-export",
        "deepfake-evaluate",  # the "Evaluation" part: cross-dataset and robustness
    ]
    for command in steps:
        command = command.replace(
            "--dataset dfdc /data/dfdc", f"--dataset folder {tmp_path / 'data'} --size 64"
        )
        command = command.replace("--config efficientnet_b0", "--config smoke --set epochs=2")
        # the other prepared sets are the same crops here; one perturbation is enough to run it
        command = command.replace("=./crops-celebdf", "=./crops").replace("=./crops-timit", "=./crops")
        command = command.replace("--robustness", "--robustness jpeg")
        run(command, tmp_path)
    assert (tmp_path / "models" / "deepfake_detector" / "1" / "assets.extra" / "model.json").is_file()
    report = tmp_path / "runs" / "r1" / "eval" / "paper"
    assert (report / "cross_dataset.md").is_file() and (report / "robustness.png").is_file()


def wait_for(url: str, needle: bytes, process: subprocess.Popen, timeout_s: float = 90.0) -> bytes:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                body = reply.read()
                if needle in body:
                    return body
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer with {needle!r} within {timeout_s} s")


def start_literal(command: str, cwd: pathlib.Path) -> subprocess.Popen:
    argv = shlex.split(command)
    argv[0] = str(BIN / argv[0])
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_literal(process: subprocess.Popen) -> int:
    process.terminate()
    return process.wait(30)


def test_upload_page_command(devserver, tmp_path: pathlib.Path) -> None:
    from serving.devserver.launcher import free_port

    (command,) = commands(section("The upload page"), "deepfake-web")
    port = free_port()
    command = command.replace("grpc://localhost:8500", devserver.grpc_url).replace("8080", str(port))
    process = start_literal(command, tmp_path)
    try:
        health = json.loads(wait_for(f"http://127.0.0.1:{port}/healthz", b"stable_version", process))
        assert health["stable_version"] == 1
        assert b"<html" in wait_for(f"http://127.0.0.1:{port}/", b"<html", process).lower()
    finally:
        stop_literal(process)


def test_development_server_command(exported_version: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from export.modelconfig import initial_config, save_config
    from serving.devserver.launcher import free_port

    (command,) = commands(section("The development server"), "deepfake-devserver")
    shutil.copytree(exported_version, tmp_path / "models" / "deepfake_detector" / "1")
    save_config(
        tmp_path / "models" / "models.config",
        initial_config(str(tmp_path / "models" / "deepfake_detector"), 1),
    )
    grpc_port, rest_port = free_port(), free_port()
    command = command.replace("--port=8500", f"--port={grpc_port}").replace("=8501", f"={rest_port}")
    process = start_literal(command, tmp_path)  # models/models.config is relative to this folder
    try:
        status = json.loads(
            wait_for(f"http://127.0.0.1:{rest_port}/v1/models/deepfake_detector", b"AVAILABLE", process)
        )
        assert status["model_version_status"][0]["version"] == "1"
    finally:
        assert stop_literal(process) == 0
