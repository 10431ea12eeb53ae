"""deepfake-scan: arguments, outputs, exit codes, and one bad file among good ones."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deepfake_client.cli import expand_paths, main
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
    assert names == ["broken.mp4", "face.jpg", "clip.mp4", "face.jpg"]
    errors = [type(e) for e in found if not isinstance(e, pathlib.Path)]
    assert errors == [NotFoundError, InvalidInputError, NotFoundError]


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
    assert code == 2  # broken.mp4: invalid input, the others went on
    assert sorted(pathlib.Path(v["source"]).name for v in lines) == ["clip.mp4", "face.jpg"]
    assert all(v["model_version"] == 1 and v["label"] in ("FAKE", "REAL") for v in lines)
    assert "broken.mp4" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_csv_is_the_kaggle_format(media: pathlib.Path, fake_serving, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main([str(media / "face.jpg"), "--server", fake_serving.rest_url, "--csv", "--quiet"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0] == "filename,label"
    name, score = out[1].split(",")
    assert name == "face.jpg" and 0.0 <= float(score) <= 1.0


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
