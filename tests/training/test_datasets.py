"""Each dataset reader on a small tree in the real layout, generated here (files are placeholders)."""

from __future__ import annotations

import json
import pathlib

import pytest

from deepfake_client.errors import InvalidInputError, NotFoundError
from training.datasets import (
    hash_split,
    read_celebdf,
    read_dataset,
    read_dfdc,
    read_ffpp,
    read_folder,
    stratified_split,
)


def touch(path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def make_dfdc(root: pathlib.Path, parts: int = 2, originals: int = 6) -> None:
    for p in range(parts):
        part = root / f"dfdc_train_part_{p}"
        meta = {}
        for i in range(originals):
            real = f"r{p}_{i}.mp4"
            meta[real] = {"label": "REAL", "split": "train", "original": None}
            for k in range(3):  # DFDC is mostly fake: several fakes per original
                meta[f"f{p}_{i}_{k}.mp4"] = {"label": "FAKE", "split": "train", "original": real}
        for name in meta:
            touch(part / name)
        (part / "metadata.json").write_text(json.dumps(meta))


def by_id(items):
    return {i.id: i for i in items}


def test_dfdc_training_parts_keep_fakes_with_their_original(tmp_path):
    make_dfdc(tmp_path)
    items = by_id(read_dfdc(tmp_path, val_fraction=0.3, test_fraction=0.3))
    assert len(items) == 2 * 6 * 4
    assert sum(i.label for i in items.values()) == 36
    assert {i.split for i in items.values()} == {"train", "val", "test"}
    for item in items.values():
        if item.label:
            part, name = item.id.split("/")
            original = items[f"{part}/{item.group}"]
            assert original.label == 0 and original.split == item.split


def test_dfdc_public_test_set_is_the_test_split(tmp_path):
    make_dfdc(tmp_path, parts=1)
    touch(tmp_path / "test" / "videos" / "aaa.mp4")
    touch(tmp_path / "test" / "videos" / "bbb.mp4")
    (tmp_path / "test" / "labels.csv").write_text("filename,label\naaa.mp4,1\nbbb.mp4,0\nmissing.mp4,1\n")
    items = by_id(read_dfdc(tmp_path))
    assert items["test/aaa.mp4"].label == 1 and items["test/bbb.mp4"].label == 0
    assert {i.split for i in items.values() if i.source == "dfdc_test"} == {"test"}
    assert all(i.split in ("train", "val") for i in items.values() if i.source != "dfdc_test")


def test_dfdc_errors_name_the_file(tmp_path):
    (tmp_path / "dfdc_train_part_3").mkdir()
    with pytest.raises(InvalidInputError, match=r"dfdc_train_part_3/metadata\.json: missing"):
        read_dfdc(tmp_path)
    (tmp_path / "dfdc_train_part_3" / "metadata.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="metadata.json: not valid JSON"):
        read_dfdc(tmp_path)
    other = tmp_path / "t"
    touch(other / "videos" / "a.mp4")
    (other / "labels.csv").write_text("filename,label\na.mp4,yes\n")
    with pytest.raises(InvalidInputError, match=r"labels\.csv:2: expected"):
        read_dfdc(other)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="empty: not a DFDC layout"):
        read_dfdc(tmp_path / "empty")
    with pytest.raises(NotFoundError):
        read_dfdc(tmp_path / "nope")


def make_ffpp(root: pathlib.Path, with_splits: bool) -> None:
    pairs = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}
    for split_pairs in pairs.values():
        for a, b in split_pairs:
            for x in (a, b):
                touch(root / "original_sequences/youtube/c23/videos" / f"{x}.mp4")
            for method in ("Deepfakes", "FaceSwap"):
                touch(root / "manipulated_sequences" / method / "c23/videos" / f"{a}_{b}.mp4")
                touch(root / "manipulated_sequences" / method / "c23/videos" / f"{b}_{a}.mp4")
    touch(root / "original_sequences/youtube/c23/videos/999.mp4")  # in no official split
    if with_splits:
        for split, split_pairs in pairs.items():
            touch(root / "splits" / f"{split}.json").write_text(json.dumps(split_pairs))


def test_ffpp_official_splits(tmp_path):
    make_ffpp(tmp_path, with_splits=True)
    items = by_id(read_ffpp(tmp_path))
    assert "original/999.mp4" not in items  # listed by no split: left out
    assert items["original/004.mp4"].split == items["Deepfakes/005_004.mp4"].split == "val"
    assert items["FaceSwap/006_007.mp4"].split == "test" and items["FaceSwap/006_007.mp4"].label == 1
    assert sum(1 for i in items.values() if i.split == "train") == 4 + 8
    assert items["original/000.mp4"].label == 0


def test_ffpp_without_split_files_groups_linked_ids(tmp_path):
    make_ffpp(tmp_path, with_splits=False)
    items = read_ffpp(tmp_path, val_fraction=0.3, test_fraction=0.3)
    split_of = {}
    for item in items:
        split_of.setdefault(item.group, set()).add(item.split)
    assert all(len(s) == 1 for s in split_of.values())
    assert len(split_of) == 5  # four pairs and the lone 999


def test_ffpp_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="not a FaceForensics"):
        read_ffpp(tmp_path)
    make_ffpp(tmp_path, with_splits=True)
    (tmp_path / "splits" / "val.json").write_text('{"a": 1}')
    with pytest.raises(InvalidInputError, match=r"val\.json: expected a list of id pairs"):
        read_ffpp(tmp_path)
    with pytest.raises(InvalidInputError, match="compression"):
        read_ffpp(tmp_path, compression="c99")


def make_celebdf(root: pathlib.Path) -> None:
    for name in ("id0_0000", "id0_0001", "id1_0000", "id1_0001", "id2_0000"):
        touch(root / "Celeb-real" / f"{name}.mp4")
    for name in ("00000", "00001", "00170"):
        touch(root / "YouTube-real" / f"{name}.mp4")
    for name in ("id0_id1_0000", "id0_id2_0001", "id1_id0_0000", "id1_id2_0001", "id2_id0_0000"):
        touch(root / "Celeb-synthesis" / f"{name}.mp4")
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id2_id0_0000.mp4\n"
    )


def test_celebdf_inverted_labels_and_test_groups(tmp_path):
    make_celebdf(tmp_path)
    items = by_id(read_celebdf(tmp_path, val_fraction=0.3))
    assert items["YouTube-real/00170.mp4"].label == 0 and items["YouTube-real/00170.mp4"].split == "test"
    assert items["Celeb-synthesis/id2_id0_0000.mp4"].label == 1
    assert items["Celeb-synthesis/id2_id0_0000.mp4"].split == "test"
    # the fake of a test original would leak its original's face into training: left out
    assert "Celeb-synthesis/id0_id1_0000.mp4" not in items
    assert {
        i.split
        for i in items.values()
        if i.id
        not in ("YouTube-real/00170.mp4", "Celeb-real/id0_0000.mp4", "Celeb-synthesis/id2_id0_0000.mp4")
    } <= {"train", "val"}
    # identity-disjoint: every kept video's people are all in its split, and no person in two splits
    where: dict[str, set[str]] = {}
    for item in items.values():
        if item.split != "test":
            folder, _, name = item.id.partition("/")
            people = name[:-4].split("_")[:-1] if folder != "YouTube-real" else [item.id]
            for person in people:
                where.setdefault(person, set()).add(item.split)
    assert all(len(splits) == 1 for splits in where.values()), where


def test_celebdf_is_split_by_celebrity(tmp_path):
    for c in range(12):
        for v in range(3):
            touch(tmp_path / "Celeb-real" / f"id{c}_{v:04d}.mp4")
            touch(tmp_path / "Celeb-synthesis" / f"id{c}_id{(c + 1) % 12}_{v:04d}.mp4")
            touch(tmp_path / "Celeb-synthesis" / f"id{c}_id{(c + 5) % 12}_{v:04d}.mp4")
    items = read_celebdf(tmp_path, val_fraction=0.25)
    real_split = {i.id.split("/")[1].split("_")[0]: i.split for i in items if i.source == "Celeb-real"}
    assert sorted(set(real_split.values())) == ["test", "train", "val"]
    for item in items:
        people = item.id.split("/")[1][:-4].split("_")[:-1]
        assert {real_split[p] for p in people} == {item.split}  # both people of a fake in its split
    assert sum(i.label for i in items) < 72  # fakes across splits were left out, not leaked


def test_dfdc_with_three_parts_or_more_splits_whole_parts(tmp_path):
    make_dfdc(tmp_path, parts=8, originals=2)
    items = read_dfdc(tmp_path, val_fraction=0.15, test_fraction=0.15)
    part_splits: dict[str, set[str]] = {}
    for item in items:
        part_splits.setdefault(item.source, set()).add(item.split)
    assert all(len(splits) == 1 for splits in part_splits.values())  # each part (its actors) on one side
    assert sorted({s for (s,) in part_splits.values()}) == ["test", "train", "val"]


def test_celebdf_bad_test_list(tmp_path):
    make_celebdf(tmp_path)
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\nREAL Celeb-real/id0_0000.mp4\n"
    )
    with pytest.raises(InvalidInputError, match=r"List_of_testing_videos\.txt:2: expected"):
        read_celebdf(tmp_path)
    (tmp_path / "List_of_testing_videos.txt").write_text("0 YouTube-real/00170.mp4\n")
    with pytest.raises(InvalidInputError, match="labelled FAKE but lives in YouTube-real"):
        read_celebdf(tmp_path)


def test_folder_reader(tmp_path):
    for i in range(5):
        touch(tmp_path / "real" / f"r{i}.mp4")
        touch(tmp_path / "fake" / "sub" / f"f{i}.png")
    touch(tmp_path / "fake" / "notes.txt")
    items = read_folder(tmp_path, val_fraction=0.2, test_fraction=0.2)
    # every regular file is an item: preparation tells media from the rest by content
    assert len(items) == 11 and "fake/notes.txt" in {i.id for i in items}
    for split in ("train", "val", "test"):
        assert {i.label for i in items if i.split == split} == {0, 1}
    split_dirs = tmp_path / "s"
    touch(split_dirs / "train" / "real" / "a.jpg")
    touch(split_dirs / "test" / "fake" / "b.mp4")
    assert {(i.split, i.label) for i in read_folder(split_dirs)} == {("train", 0), ("test", 1)}
    with pytest.raises(InvalidInputError, match="not a folder dataset"):
        read_folder(tmp_path / "real")


def test_unknown_dataset_and_stable_splits(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown dataset 'kaggle'"):
        read_dataset("kaggle", tmp_path)
    assert hash_split("abc", val_fraction=0.1, test_fraction=0.1) == hash_split(
        "abc", val_fraction=0.1, test_fraction=0.1
    )
    groups = {f"g{i}": i % 2 for i in range(20)}
    splits = stratified_split(groups, val_fraction=0.2, test_fraction=0.2)
    assert sum(s == "test" for s in splits.values()) == 4 and sum(s == "val" for s in splits.values()) == 4
