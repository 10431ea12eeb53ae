"""deepfake-scan: arguments, outputs, exit codes, and one bad file among good ones."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deepfake_client.cli import Unusable, expand_paths, main
from deepfake_client.errors import InvalidInputError, NotFoundError


@pytest.fixture
def media(tmp_path: pathlib.Path, face_image: np.ndarray, face_video: pathlib.Path) -> pathlib.Path:
    import cv2

    folder = tmp_path / "uploads"
    (folder / "nested").mkdir(parents=True)
    cv2.imwrite(str(folder / "face.jpg"), face_image[..., ::-1])
    shutil.copy(face_video, folder / "nested" / "clip.mp4")
    (folder / "broken.mp4").write_text("not a video")
    (folder / "notes.txt").write_text("ignored: not media")
    return folder


def test_expand_paths(media: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").mkdir()
    found = list(
        expand_paths(
            [
                str(media),
                str(media / "*.jpg"),
                str(tmp_path / "missing.mp4"),
                str(tmp_path / "empty"),
                str(tmp_path / "*.nothing"),
            ]
        )
    )
    names = [p.name for p in found if isinstance(p, pathlib.Path)]
    # every regular file: the input gate decides later, from the content
    assert names == ["broken.mp4", "face.jpg", "clip.mp4", "notes.txt", "face.jpg"]
    errors = [(type(e.error), pathlib.Path(e.source).name) for e in found if isinstance(e, Unusable)]
    assert errors == [
        (NotFoundError, "missing.mp4"),
        (InvalidInputError, "empty"),
        (NotFoundError, "*.nothing"),
    ]


def test_json_lines_and_exit_code_with_a_bad_file(media: pathlib.Path, fake_serving, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(
        [
            str(media),
            "--server",
            fake_serving.grpc_url,
            "--label",
            "stable",
            "--json",
            "--frames",
            "4",
            "--workers",
            "2",
            "--quiet",
        ]
    )
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2  # broken.mp4 and notes.txt: invalid input, the others went on
    verdicts = [v for v in lines if "error" not in v]
    assert sorted(pathlib.Path(v["source"]).name for v in verdicts) == ["clip.mp4", "face.jpg"]
    assert all(v["model_version"] == 1 and v["label"] in ("FAKE", "REAL") for v in verdicts)
    errors = {pathlib.Path(v["source"]).name: v for v in lines if "error" in v}
    assert set(errors) == {"broken.mp4", "notes.txt"}
    assert all(e["exit_code"] == 2 and "a text file" in e["error"] for e in errors.values())
    assert "broken.mp4" in err and "Traceback" not in err and len(err.strip().splitlines()) == 2


def test_csv_is_the_kaggle_format(media: pathlib.Path, fake_serving, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main([str(media / "face.jpg"), "--server", fake_serving.rest_url, "--csv", "--quiet"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0] == "filename,label,error"
    name, score, error = out[1].split(",")
    assert name == "face.jpg" and 0.0 <= float(score) <= 1.0 and error == ""


def test_table_output(media: pathlib.Path, fake_serving, capsys) -> None:  # type: ignore[no-untyped-def]
    assert (
        main([str(media / "face.jpg"), "--server", fake_serving.grpc_url, "--version", "2", "--quiet"]) == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("LABEL") and "deepfake_detector/2" in out and "face.jpg" in out


@pytest.mark.parametrize(
    "argv, code, text",
    [
        (["--label", "nope"], 3, "Unrecognized servable version label"),
        (["--version", "7"], 3, "not found"),
        (["--timeout", "1", "--retries", "0", "--server", "grpc://127.0.0.1:9"], 4, "unavailable"),
        (["--server", "ftp://x"], 2, "unsupported server URL"),
    ],
    ids=["unknown-label", "unknown-version", "unreachable", "bad-url"],
)
def test_server_side_failures_are_one_line(media, fake_serving, capsys, argv, code, text) -> None:  # type: ignore[no-untyped-def]
    argv = [str(media / "face.jpg"), "--server", fake_serving.grpc_url, *argv]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert text.lower() in err.lower() and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(fake_serving, capsys, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    assert main([str(tmp_path / "gone.mp4"), "--server", fake_serving.grpc_url, "--debug"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_help_is_instant_and_tensorflow_free() -> None:
    code = (
        "import sys\nfrom deepfake_client.cli import main\n"
        "try:\n main(['--help'])\nexcept SystemExit:\n pass\n"
        "print('cv2' in sys.modules, 'grpc' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False False"


def test_missing_tls_ca_file_is_one_line(tmp_path: pathlib.Path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = [str(tmp_path / "a.jpg"), "--server", "grpcs://127.0.0.1:9", "--tls-ca", str(tmp_path / "ca.pem")]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "ca.pem" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _mixed_folder(folder: pathlib.Path, face_image: np.ndarray, face_video: pathlib.Path) -> dict[str, str]:
    """The issue's folder: jpg, jfif, gif, 3gp, no suffix, a JPEG named .mp4, truncated files; and
    for each the outcome expected (a label, or the error text)."""
    import av
    import cv2
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    jpeg = cv2.imencode(".jpg", face_image[..., ::-1])[1].tobytes()
    clip = face_video.read_bytes()
    (folder / "photo.jpg").write_bytes(jpeg)
    (folder / "photo.jfif").write_bytes(jpeg)
    (folder / "photo_without_suffix").write_bytes(jpeg)
    (folder / "photo_named.mp4").write_bytes(jpeg)
    (folder / "clip_without_suffix").write_bytes(clip)
    frames = [Image.fromarray(np.roll(face_image, 8 * i, axis=1)) for i in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=200, loop=0)
    with av.open(str(folder / "phone.3gp"), "w", format="3gp") as container:
        stream = container.add_stream("h263", rate=10)
        stream.width, stream.height, stream.pix_fmt = 352, 288, "yuv420p"
        for i in range(5):
            rgb = cv2.resize(np.roll(face_image, 4 * i, axis=1), (352, 288))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    (folder / "truncated.mp4").write_bytes(clip[: len(clip) // 3])
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "random.bin").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "notes.txt").write_text("not media\n")
    from test_inputs import png_bytes

    (folder / "bomb.png").write_bytes(png_bytes(100_000, 10, rows=1))
    (folder / "too_much_data.png").write_bytes(png_bytes(64, 64, rows=400))  # libpng warns on it
    ok = ["photo.jpg", "photo.jfif", "photo_without_suffix", "photo_named.mp4", "clip_without_suffix"]
    ok += ["animated.gif", "phone.3gp", "too_much_data.png"]
    errors = {
        "truncated.mp4": "corrupt or truncated video",
        "truncated.jpg": "corrupt or truncated image",
        "empty.mp4": "the file is empty",
        "random.bin": "not an image or a video",
        "notes.txt": "a text file",
        "bomb.png": "100000x10, over the limits",
    }
    return {**dict.fromkeys(ok, ""), **errors}


def test_every_file_of_a_mixed_folder_gets_one_row(
    tmp_path, face_image, face_video, fake_serving, capsys
) -> None:  # type: ignore[no-untyped-def]
    expected = _mixed_folder(tmp_path / "mixed", face_image, face_video)
    argv = [str(tmp_path / "mixed"), "--server", fake_serving.grpc_url, "--frames", "3", "--quiet"]
    assert main([*argv, "--json"]) == 2
    out, err = capsys.readouterr()
    rows = {pathlib.Path(r["source"]).name: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == set(expected)
    for name, error in expected.items():
        if error:
            assert error in rows[name]["error"] and rows[name]["exit_code"] == 2, name
        else:
            assert rows[name]["label"] in ("FAKE", "REAL", "NO_FACE") and "error" not in rows[name], name
    assert rows["animated.gif"]["kind"] == "video" and rows["photo_named.mp4"]["kind"] == "image"
    assert len(err.strip().splitlines()) == sum(1 for e in expected.values() if e)

    assert main([*argv, "--csv"]) == 2
    import csv

    out = capsys.readouterr().out
    table = list(csv.DictReader(out.splitlines()))
    assert {r["filename"] for r in table} == set(expected) and len(table) == len(expected)
    for row in table:
        assert (
            (expected[row["filename"]] in row["error"]) if expected[row["filename"]] else row["error"] == ""
        )
        if row["error"]:
            assert row["label"] == "0.500000"


def test_hostile_files_cost_one_stderr_line_each_and_no_native_noise(
    tmp_path, face_image, face_video, fake_serving
) -> None:  # type: ignore[no-untyped-def]
    """The installed console script, in its own process: nothing from OpenCV, FFmpeg or libpng."""
    expected = _mixed_folder(tmp_path / "mixed", face_image, face_video)
    command = [shutil.which("deepfake-scan") or "deepfake-scan", str(tmp_path / "mixed")]
    command += ["--server", fake_serving.grpc_url, "--frames", "3", "--json", "--workers", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    failed = sorted(name for name, error in expected.items() if error)
    assert len(lines) == len(failed), done.stderr
    assert all(line.startswith("deepfake-scan: error (exit 2): ") for line in lines), done.stderr
    assert sorted(next(n for n in failed if n in line) for line in lines) == failed
    # --debug lets the native libraries speak (libpng's warning on too_much_data.png, say)
    debug = subprocess.run([*command, "--debug"], capture_output=True, text=True, timeout=300)
    assert "libpng" in debug.stderr and "Traceback" in debug.stderr


def test_resume_skips_files_with_a_verdict(media, fake_serving, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    argv = [str(media), "--server", fake_serving.grpc_url, "--json", "--frames", "2"]
    assert main(argv) == 2
    first = capsys.readouterr().out
    previous = tmp_path / "verdicts.jsonl"
    previous.write_text(first + '{"source": "torn')  # a line torn by a crash is ignored
    (media / "new.jpg").write_bytes((media / "face.jpg").read_bytes())
    assert main([*argv, "--resume", str(previous)]) == 2
    out, err = capsys.readouterr()
    rows = {pathlib.Path(r["source"]).name: r for r in map(json.loads, out.splitlines())}
    # the two verdicts are not redone; the error rows are tried again; the new file is scored
    assert set(rows) == {"broken.mp4", "notes.txt", "new.jpg"} and "error" not in rows["new.jpg"]
    assert "2 files already have a verdict" in err
    assert main([*argv, "--resume", str(tmp_path / "nope.jsonl")]) == 3
    assert "nope.jsonl: no such file" in capsys.readouterr().err


def test_the_table_streams_row_by_row(media, fake_serving, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """The second file's preparation waits until the first file's row is on stdout."""
    import threading

    from deepfake_client.client import DetectorClient

    first_row = threading.Event()

    class Watch:
        def __init__(self, stream):  # type: ignore[no-untyped-def]
            self.stream = stream

        def write(self, text: str) -> int:
            if "face.jpg" in text:
                first_row.set()
            return self.stream.write(text)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.stream, name)

    prepare = DetectorClient.prepare

    def slow_second(self, source):  # type: ignore[no-untyped-def]
        if pathlib.Path(source).name == "clip.mp4":
            assert first_row.wait(20), "no row before the last file was done"
        return prepare(self, source)

    monkeypatch.setattr(DetectorClient, "prepare", slow_second)
    monkeypatch.setattr(sys, "stdout", Watch(sys.stdout))
    argv = [str(media / "face.jpg"), str(media / "nested" / "clip.mp4"), "--server", fake_serving.grpc_url]
    assert main([*argv, "--quiet", "--frames", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("LABEL") and "face.jpg" in out[1] and "clip.mp4" in out[2]


def test_help_has_examples_exit_codes_and_defaults(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "deepfake-scan uploads/ --json --resume" in text
    assert "exit codes" in text and "4  the server is unavailable" in text
    assert "(default: 32)" in text and "(default: stable)" in text and "(default: None)" not in text
