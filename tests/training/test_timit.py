"""DeepFake-TIMIT with VidTIMIT's real videos: the layout, speaker-disjoint splits, deepfake-prepare."""

from __future__ import annotations

import json
import pathlib

import pytest

from training.cli import prepare_main
from training.datasets import read_dataset

PAIRS = (("fadg0", "fram1"), ("mcem0", "mdab0"), ("felc0", "mjsw0"))  # swapped pairs, as in the dataset


@pytest.fixture(scope="module")
def timit_tree(tmp_path_factory) -> pathlib.Path:
    """``DeepfakeTIMIT/{higher,lower}_quality/<a>/sa1-video-<b>.avi`` for each pair both ways, and
    ``VidTIMIT/<speaker>/sa1.avi``: small real H.264 videos of the generated face."""
    from training.synthetic import synthetic_frames, write_video

    root = tmp_path_factory.mktemp("timit")
    for n, (a, b) in enumerate(PAIRS):
        for k, (target, source) in enumerate(((a, b), (b, a))):
            seed = 10 * n + k
            real = root / "VidTIMIT" / target / "sa1.avi"
            real.parent.mkdir(parents=True, exist_ok=True)
            write_video(real, synthetic_frames(False, 3, 120, 160, seed), fps=10)
            for quality in ("higher_quality", "lower_quality"):
                fake = root / "DeepfakeTIMIT" / quality / target / f"sa1-video-{source}.avi"
                fake.parent.mkdir(parents=True, exist_ok=True)
                write_video(fake, synthetic_frames(True, 3, 120, 160, seed), fps=10)
    return root


def test_speakers_never_cross_splits(timit_tree):
    items = read_dataset("timit", timit_tree / "DeepfakeTIMIT", real_root=timit_tree / "VidTIMIT")
    assert len(items) == 6 + 12
    assert {i.source for i in items if i.label == 1} == {"higher_quality", "lower_quality"}
    assert {i.source for i in items if i.label == 0} == {"VidTIMIT"}
    split_of_person: dict[str, set[str]] = {}
    for item in items:
        people = item.id.split("/")[1:2] + ([item.path.stem.split("-video-")[1]] if item.label else [])
        for person in people:
            split_of_person.setdefault(person, set()).add(item.split)
    assert all(len(splits) == 1 for splits in split_of_person.values()), split_of_person
    assert len(split_of_person) == 6 and {i.split for i in items} == {"train", "val", "test"}
    for a, b in PAIRS:  # a pair is one group: its reals and fakes together
        assert split_of_person[a] == split_of_person[b]
    # the default place of the real videos: ROOT/VidTIMIT or ../VidTIMIT
    assert len(read_dataset("timit", timit_tree / "DeepfakeTIMIT")) == len(items)
    only_hq = read_dataset("timit", timit_tree, qualities=("higher_quality",))
    assert sum(i.label for i in only_hq) == 6


def test_prepare_timit_and_its_one_line_refusals(timit_tree, tmp_path, capsys):
    out = tmp_path / "crops"
    argv = ["--dataset", "timit", str(timit_tree / "DeepfakeTIMIT"), str(out), "--real-root"]
    common = ["--size", "64", "--frames", "2", "--workers", "1", "--quiet", "--json"]
    assert prepare_main([*argv, str(timit_tree / "VidTIMIT"), *common]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dataset"] == "timit"
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 18 and sum(len(r["faces"]) for r in records) >= 18
    assert {c for s in info["counts"].values() for c in (s["real_crops"], s["fake_crops"])} != {0}

    empty = tmp_path / "empty"
    (empty / "lower_quality" / "fadg0").mkdir(parents=True)
    (empty / "lower_quality" / "fadg0" / "sa1-video-fram1.avi").write_bytes(
        (timit_tree / "DeepfakeTIMIT" / "lower_quality" / "fadg0" / "sa1-video-fram1.avi").read_bytes()
    )
    frames = tmp_path / "vid" / "fadg0" / "video" / "sa1"
    frames.mkdir(parents=True)
    (frames / "001").write_bytes(b"\xff\xd8\xff")
    for extra, message in (([], "--real-root"), (["--real-root", str(tmp_path / "vid")], "ffmpeg")):
        assert prepare_main(["--dataset", "timit", str(empty), str(tmp_path / "o"), *extra, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()
