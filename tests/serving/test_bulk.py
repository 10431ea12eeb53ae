"""``deepfake-bulk`` on a real Ray cluster (one per module, 2 CPUs) against two real dev servers:
every source exactly once, with a Ray worker and a model server killed mid-run; a re-run redoes
nothing; ``prepare`` on Ray writes deepfake-prepare's manifest; bad input is one line and an exit
code, and a folder that is not ours is never written to."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter

import pytest

from serving.bulk import parts
from serving.devserver.launcher import free_port
from tests.conftest import ROOT

pytest.importorskip("ray")
VIDEOS = 12
POISON = "crashes-the-worker"  # a source whose name has this kills the Ray worker that opens it
# Ray's workers (and only they: the head's environment) run this at start-up: a file that crashes a
# native decoder, as a corrupt video can, is one that makes its worker exit at once when opened.
CRASH_ON_OPEN = f"""
import os, sys
def _crash(event, args):
    if event == "open" and isinstance(args[0], str) and {POISON!r} in args[0]:
        os._exit(139)
sys.addaudithook(_crash)
"""
RAY_WORKER = "MapWorker(MapBatches(_RowAdapter))"  # the title Ray Data gives the pool's actors


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def ray_cluster():  # type: ignore[no-untyped-def]
    """``ray start --head`` with 2 CPUs in its own temp dir; ``(address, head process)``."""
    temp = tempfile.mkdtemp(prefix="rb-")  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    ray = shutil.which("ray", path=os.path.dirname(sys.executable))
    site = pathlib.Path(temp, "site")
    site.mkdir()
    (site / "sitecustomize.py").write_text(CRASH_ON_OPEN)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", PYTHONPATH=path)  # no token
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--object-store-memory=200000000", f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the GCS listens once the head is up
        assert head.poll() is None, "ray start --head exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield address, head
    processes = _descendants(head.pid)
    for pid in processes:  # the workers first: the head waits for them otherwise
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(10)
    except subprocess.TimeoutExpired:
        head.kill()
        head.wait(10)
    for pid in processes:  # what the head left behind (workers live in their own sessions)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """12 small H.264 clips of a moving face, and a text file (an error row)."""
    from training.synthetic import moving_face_frames, write_video

    folder = tmp_path_factory.mktemp("bulk-videos")
    for i in range(VIDEOS):
        frames = moving_face_frames(count=8, height=180, width=320, face_height=100, seed=i)
        write_video(folder / f"clip{i:02d}.mp4", frames, fps=8)
    (folder / "notes.txt").write_text("not a video\n")
    return folder


@pytest.fixture
def two_servers(tmp_path, exported_version, devserver_launcher):  # type: ignore[no-untyped-def]
    from tests.serving.test_rollout import make_repository, serve

    start, stop = devserver_launcher
    repository = make_repository(tmp_path, exported_version)
    servers = [serve(start, repository, tmp_path / f"server{i}.log") for i in range(2)]
    yield servers
    for server in servers:
        stop(server)


def bulk(*args: str, address: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "serving.bulk.cli", *args, f"--address={address}", "--json", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def finish(process: subprocess.Popen, timeout_s: float = 180) -> tuple[int, dict, str]:
    out, err = process.communicate(timeout=timeout_s)
    lines = out.strip().splitlines()
    return process.returncode, (json.loads(lines[-1]) if lines else {}), err


def part_rows(out: pathlib.Path) -> Counter:
    """How many rows each source has over every part (exactly once: 1 each)."""
    return Counter(row["source"] for _, _, row in parts.read_parts(out))


@pytest.mark.slow
def test_scan_exactly_once_through_a_worker_and_a_server_killed_then_nothing_redone(
    ray_cluster, videos, two_servers, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    address, head = ray_cluster
    out = tmp_path / "out"
    servers = [f"--server={s.grpc_url}" for s in two_servers]
    command = [str(videos), *servers, f"--out={out}", "--workers=2", "--shard-size=1", "--frames=6"]
    run = bulk("scan", *command, address=address)

    # once two parts are written: kill a pool worker (SIGKILL, as the OOM killer would) and a replica
    deadline = time.monotonic() + 120
    while len(list((out / parts.PARTS).glob("part-*"))) < 2 and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        time.sleep(0.05)
    workers = [p for p in _descendants(head.pid) if RAY_WORKER in _cmdline(p)]
    assert len(workers) == 2, [_cmdline(p) for p in _descendants(head.pid)]
    os.kill(workers[0], signal.SIGKILL)
    two_servers[0].process.send_signal(signal.SIGKILL)
    written_at_kill = len(list((out / parts.PARTS).glob("part-*")))
    assert written_at_kill < VIDEOS and run.poll() is None  # the kills landed mid-run

    code, summary, stderr = finish(run)
    assert code == 2, stderr  # the text file's error row; every video got a verdict
    rows = [json.loads(line) for line in (out / parts.MERGED).read_text().splitlines()]
    sources = sorted(str(p) for p in videos.iterdir())
    assert [r["source"] for r in rows] == sources  # one row per source, sorted
    assert all("error" not in r and r["model_version"] == 1 for r in rows if r["source"].endswith(".mp4"))
    assert next(r for r in rows if r["source"].endswith("notes.txt"))["exit_code"] == 2
    assert part_rows(out) == Counter(sources)  # exactly once in the parts themselves, not only the merge
    assert summary["verdicts"] == VIDEOS and summary["errors"] == 1 and summary["missing"] == 0
    assert not any(p.name.startswith(".tmp-") for p in (out / parts.PARTS).iterdir())
    assert stderr == ""  # Ray's and the native libraries' logs stay off the terminal

    # the same command again: nothing is redone, nothing rewritten
    before = {p.name: p.stat().st_mtime_ns for p in (out / parts.PARTS).iterdir()}
    code, summary, _ = finish(bulk("scan", *command, address=address))
    assert code == 2 and summary["scanned"] == 0 and summary["skipped"] == VIDEOS + 1
    assert {p.name: p.stat().st_mtime_ns for p in (out / parts.PARTS).iterdir()} == before


@pytest.mark.slow
def test_resume_scans_only_what_is_new_and_retries_unreachable_rows(
    ray_cluster, videos, two_servers, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    address, _ = ray_cluster
    out = tmp_path / "out"
    manifest = tmp_path / "first.txt"
    manifest.write_text("# the first half\n" + "\n".join(str(videos / f"clip{i:02d}.mp4") for i in range(6)))
    server = f"--server={two_servers[1].rest_url}"
    code, summary, err = finish(
        bulk("scan", f"--manifest={manifest}", server, f"--out={out}", address=address)
    )
    assert code == 0 and summary["scanned"] == 6, err
    # rows left behind: an unreachable server's (exit 4) is tried again, a bad file's (2) is final
    stale = [
        {"source": str(videos / "clip06.mp4"), "error": "server unavailable", "exit_code": 4},
        {"source": str(videos / "clip07.mp4"), "error": "corrupt", "exit_code": 2},
        # exit 3 from the servers (a version unloaded mid-run), not about the file: tried again
        {
            "source": str(videos / "clip08.mp4"),
            "error": "version not found",
            "exit_code": 3,
            "stage": "score",
        },
    ]
    parts.write_part(out, "part-stale.jsonl", [json.dumps(r) for r in stale])
    code, summary, err = finish(bulk("scan", str(videos), server, f"--out={out}", address=address))
    assert code == 2 and summary["scanned"] == VIDEOS + 1 - 7 and summary["skipped"] == 7, err
    merged = parts.merge_rows(out)
    assert "error" not in merged[stale[0]["source"]]  # its verdict wins over the old error row
    assert merged[stale[1]["source"]]["error"] == "corrupt"
    assert "error" not in merged[stale[2]["source"]]
    assert len(merged) == VIDEOS + 1


@pytest.mark.slow
def test_a_source_that_kills_its_worker_costs_only_its_own_row(
    ray_cluster, videos, two_servers, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    address, _ = ray_cluster
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(5):
        shutil.copy(videos / f"clip{i:02d}.mp4", folder)
    shutil.copy(videos / "clip05.mp4", folder / f"clip02-{POISON}.mp4")
    out = tmp_path / "out"
    command = [
        str(folder),
        f"--server={two_servers[0].grpc_url}",
        f"--out={out}",
        "--shard-size=6",
        "--frames=4",
    ]
    code, summary, stderr = finish(bulk("scan", *command, address=address), timeout_s=300)
    # one shard of six: its worker died on every try, so it was scanned again source by source
    rows = parts.merge_rows(out)
    poison = str(folder / f"clip02-{POISON}.mp4")
    assert rows[poison]["exit_code"] == 1 and rows[poison]["stage"] == "worker", rows[poison]
    assert "died on every try" in rows[poison]["error"]
    assert sorted(rows) == sorted(str(p) for p in folder.iterdir())
    assert all("error" not in r for s, r in rows.items() if s != poison), rows  # the rest of its shard
    assert part_rows(out) == Counter(list(rows))  # exactly once in the parts
    assert code == 1 and summary["verdicts"] == 5 and summary["errors"] == 1 and summary["missing"] == 0
    assert stderr == ""
    # a re-run tries only the crashed source again
    code, summary, _ = finish(bulk("scan", *command, address=address), timeout_s=300)
    assert summary["skipped"] == 5 and summary["scanned"] == 1 and code == 1


@pytest.mark.slow
def test_prepare_on_ray_writes_the_manifest_once_and_resumes(ray_cluster, videos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from training.prepare import read_manifest

    address, _ = ray_cluster
    root = tmp_path / "dataset"
    for i in range(4):
        label = "real" if i % 2 else "fake"
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(videos / f"clip{i:02d}.mp4", root / label)
    shutil.copy(videos / "clip05.mp4", root / "fake" / f"clip05-{POISON}.mp4")  # kills its worker
    args = ["prepare", "--dataset=folder", str(root), str(tmp_path / "crops"), "--frames=2", "--size=32"]
    code, info, err = finish(bulk(*args, address=address), timeout_s=300)
    assert code == 0, err
    records = read_manifest(tmp_path / "crops")
    assert sorted(r["id"] for r in records) == sorted({r["id"] for r in records}) and len(records) == 5
    poison = [r for r in records if POISON in r["id"]]
    assert len(poison) == 1 and poison[0]["status"] == "failed" and "died on every try" in poison[0]["error"]
    assert all(r["status"] == "ok" for r in records if r not in poison)  # the others were prepared
    assert sum(c["crops"] for c in info["counts"].values()) == sum(len(r["faces"]) for r in records) > 0
    code, _, err = finish(bulk(*args, address=address))
    assert code == 0 and len(read_manifest(tmp_path / "crops")) == 5, err


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["scan", "--out=OUT", "--server=grpc://127.0.0.1:1"], 2, "name sources"),
        (["scan", "VIDEOS", "--out=VIDEOS", "--server=grpc://127.0.0.1:1"], 2, "no bulk.json"),
        (["scan", "VIDEOS", "--out=OUT", "--server=grpc://a:1,http://b:2"], 2, "mixes gRPC and REST"),
        (["scan", "VIDEOS", "--out=OUT", "--workers=0"], 2, "must be positive"),
        (["scan", "VIDEOS", "--out=OUT", "--manifest=MISSING"], 3, "no such file"),
        (
            ["scan", "VIDEOS", "--out=OUT", "--server=grpc://127.0.0.1:1", "--timeout=1", "--retry-for=0"],
            4,
            "",
        ),
        (["prepare", "--dataset=folder", "MISSING", "OUT"], 3, ""),
    ],
)
def test_bad_input_is_one_line_and_its_exit_code(args, code, message, videos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    names = {"OUT": str(tmp_path / "out"), "VIDEOS": str(videos), "MISSING": str(tmp_path / "missing")}
    argv = []
    for arg in args:
        for name, value in names.items():
            arg = arg.replace(name, value)
        argv.append(arg)
    before = sorted(p.name for p in videos.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "serving.bulk.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and message in result.stderr
    assert sorted(p.name for p in videos.iterdir()) == before  # nothing written into a folder not ours
