"""Preparation: the client's crop pixel for pixel, a manifest, resume, corrupt videos, bad input."""

from __future__ import annotations

import json
import logging
import pathlib
import shutil

import cv2
import numpy as np
import pytest

from deepfake_client.errors import InvalidInputError
from deepfake_client.faces import crop_face, faces_in_frames, make_detector
from deepfake_client.video import sample_frames
from training.cli import prepare_main
from training.prepare import prepare_dataset, read_manifest


def test_crops_equal_the_clients_crop_pixel_for_pixel(prepared_crops, synthetic_dataset):
    info = json.loads((prepared_crops / "prepare.json").read_text())
    records = [r for r in read_manifest(prepared_crops) if r["kind"] == "video" and r["faces"]]
    assert records
    record = records[0]
    frames = sample_frames(synthetic_dataset / record["id"], info["frames"])
    detector = make_detector()  # the client's default detector, the one preparation must use
    assert info["detector"]["name"] == "centerface"
    # the client's path from frames to crops (DetectorClient.prepare uses faces_in_frames too)
    found = {
        frame.index: (frame, faces)
        for frame, faces in faces_in_frames(frames, detector, info["crop_margin"], 64)
    }
    for face in record["faces"]:
        frame, faces = found[face["frame"]]
        client = faces[face["face"]]
        stored = cv2.cvtColor(cv2.imread(str(prepared_crops / face["file"])), cv2.COLOR_BGR2RGB)
        assert stored.shape == (64, 64, 3)
        np.testing.assert_array_equal(stored, client.crop)
        np.testing.assert_array_equal(stored, crop_face(frame.rgb, client.box, info["crop_margin"], 64))
        assert face["box"] == client.box.as_list()


def test_manifest_and_counts(prepared_crops):
    info = json.loads((prepared_crops / "prepare.json").read_text())
    records = read_manifest(prepared_crops)
    assert len(records) == 10  # 4 videos + 1 image per class
    assert info["input_size"] == 64 and info["crop_margin"] == 0.3
    assert sum(c["crops"] for c in info["counts"].values()) == sum(len(r["faces"]) for r in records)
    assert {r["split"] for r in records} == {"train", "val", "test"}
    assert {r["split"] for r in records if r["id"].endswith("vid_000.mp4")} == {
        "test"
    }  # a pair stays together
    for r in records:
        assert r["status"] == "ok" and r["label"] == ("/fake/" in r["id"])
        assert all(f["file"].startswith(f"faces/{r['split']}/") for f in r["faces"])
        assert len(r["faces"]) <= (1 if r["kind"] == "image" else 4)


def test_resume_skips_finished_and_corrupt_video_is_not_fatal(synthetic_dataset, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dataset, data)
    (data / "train" / "fake" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    out = tmp_path / "crops"
    first = prepare_dataset("folder", data, out, size=48, frames=2, workers=1, progress=False, limit=2)
    done = {r["id"] for r in read_manifest(out)}
    assert 0 < len(done) < 11
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    with caplog.at_level(logging.WARNING):
        info = prepare_dataset("folder", data, out, size=48, frames=2, workers=1, progress=False)
    records = {r["id"]: r for r in read_manifest(out)}
    assert len(records) == 11  # each item exactly once: finished ones were not redone
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())
    assert records["train/fake/broken.mp4"]["status"] == "failed"
    assert "broken.mp4" in caplog.text
    assert sum(c["failed"] for c in info["counts"].values()) == 1
    assert first["input_size"] == info["input_size"] == 48
    with pytest.raises(InvalidInputError, match="prepared with other settings"):
        prepare_dataset("folder", data, out, size=64, frames=2, workers=1, progress=False)
    # crops made with another way of following faces (an older client) are not mixed in either
    saved = json.loads((out / "prepare.json").read_text())
    assert saved["detector"]["follow"]["full_every"] == 8
    saved["detector"]["follow"]["full_every"] = 1
    (out / "prepare.json").write_text(json.dumps(saved))
    with pytest.raises(InvalidInputError, match=r"other settings \(detector\)"):
        prepare_dataset("folder", data, out, size=48, frames=2, workers=1, progress=False)


def test_parallel_workers(synthetic_dataset, tmp_path):
    out = tmp_path / "crops"
    info = prepare_dataset(
        "folder", synthetic_dataset, out, size=32, frames=2, workers=2, progress=False, limit=2
    )
    records = read_manifest(out)
    assert (
        len(records) == len({r["id"] for r in records}) == sum(c["videos"] for c in info["counts"].values())
    )
    assert all(r["status"] == "ok" for r in records)


def test_bad_layout_exit_2_and_nothing_written(tmp_path, capsys):
    (tmp_path / "data" / "clips").mkdir(parents=True)
    out = tmp_path / "crops"
    assert prepare_main(["--dataset", "folder", str(tmp_path / "data"), str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder dataset" in err[0] and str(tmp_path / "data") in err[0]
    assert not out.exists()
    assert prepare_main(["--dataset", "dfdc", str(tmp_path / "data"), str(out), "--quiet"]) == 2
    assert not out.exists()


def test_prepare_cli_prints_a_summary(synthetic_dataset, tmp_path, capsys):
    out = tmp_path / "crops"
    code = prepare_main(
        [
            "--dataset",
            "folder",
            str(synthetic_dataset),
            str(out),
            "--size",
            "32",
            "--frames",
            "1",
            "--workers",
            "1",
            "--limit",
            "1",
            "--quiet",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input_size"] == 32 and pathlib.Path(out / "manifest.jsonl").is_file()


def test_files_are_told_apart_by_content_not_suffix(synthetic_dataset, tmp_path, face_image, caplog):
    """A JPEG named .mp4, a suffix-less video, a GIF and a text file: each gets the outcome its bytes say."""
    data = tmp_path / "data"
    for label in ("real", "fake"):
        (data / label).mkdir(parents=True)
    videos = sorted((synthetic_dataset / "train" / "real").glob("*.mp4"))
    shutil.copy(videos[0], data / "real" / "clip_without_suffix")
    (data / "real" / "photo.mp4").write_bytes(cv2.imencode(".jpg", face_image[..., ::-1])[1].tobytes())
    from PIL import Image

    Image.fromarray(face_image).save(data / "fake" / "still.gif")
    (data / "fake" / "readme.txt").write_text("notes about the fakes\n")
    out = tmp_path / "crops"
    with caplog.at_level(logging.WARNING):
        prepare_dataset("folder", data, out, size=32, frames=2, workers=1, progress=False)
    records = {r["id"]: r for r in read_manifest(out)}
    assert len(records) == 4
    assert records["real/clip_without_suffix"]["kind"] == "video"
    assert records["real/photo.mp4"]["kind"] == "image" and records["real/photo.mp4"]["status"] == "ok"
    assert records["fake/still.gif"]["kind"] == "image"
    assert records["fake/readme.txt"]["status"] == "failed"
    assert "a text file" in records["fake/readme.txt"]["error"]
    assert "readme.txt" in caplog.text


def test_crop_size_comes_from_the_preset_or_a_warning_says_it_will_be_resized(
    synthetic_dataset, tmp_path, capsys, caplog
):
    args = ["--dataset", "folder", str(synthetic_dataset), "--frames", "1", "--workers", "1", "--limit", "1"]
    assert prepare_main([*args, str(tmp_path / "a"), "--config", "smoke", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_size"] == 64  # smoke's input size
    assert (
        prepare_main([*args, str(tmp_path / "b"), "--config", "smoke", "--set", "input_size=48", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["input_size"] == 48
    assert prepare_main([*args, str(tmp_path / "c"), "--config", "smoke", "--size", "40", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["input_size"] == 40
    assert "smoke takes 64 px: training will resize every crop" in caplog.text
    assert prepare_main([*args, str(tmp_path / "d"), "--set", "input_size=48", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set needs --config" in err[0] and not (tmp_path / "d").exists()
    assert prepare_main([*args, str(tmp_path / "e"), "--config", "nope", "--quiet"]) == 2
    assert "unknown config preset 'nope'" in capsys.readouterr().err and not (tmp_path / "e").exists()
