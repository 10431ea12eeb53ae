"""deepfake-demo never deletes what it did not make."""

from __future__ import annotations

import pathlib

from serving.demo import MARKER, claim_output, main


def test_a_folder_with_user_files_is_refused_and_left_alone(tmp_path: pathlib.Path, capsys) -> None:  # type: ignore[no-untyped-def]
    work = tmp_path / "project"  # what `--out .` in a working folder would be
    (work / "src").mkdir(parents=True)
    (work / "src" / "main.py").write_text("print('mine')\n")
    (work / "notes.txt").write_text("mine\n")
    (work / "data").mkdir()  # even a name the demo would use
    (work / "data" / "keep.csv").write_text("a,b\n")
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    assert main(["--out", str(work)]) == 2
    err = capsys.readouterr().err
    assert "did not create" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before
    assert (work / "src" / "main.py").read_text() == "print('mine')\n"


def test_a_file_is_refused(tmp_path: pathlib.Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "out").write_text("mine")
    assert main(["--out", str(tmp_path / "out")]) == 2
    assert (tmp_path / "out").read_text() == "mine"


def test_new_and_empty_folders_are_claimed_with_a_marker(tmp_path: pathlib.Path) -> None:
    claim_output(tmp_path / "new" / "demo")
    assert (tmp_path / "new" / "demo" / MARKER).is_file()
    (tmp_path / "empty").mkdir()
    claim_output(tmp_path / "empty")
    assert [p.name for p in (tmp_path / "empty").iterdir()] == [MARKER]


def test_a_previous_runs_folder_loses_only_what_the_demo_wrote(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "demo-output"
    claim_output(out)
    (out / "models" / "deepfake_detector" / "1").mkdir(parents=True)
    (out / "verdicts.json").write_text("{}")
    (out / "my-notes.md").write_text("added by the user later\n")
    claim_output(out)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "my-notes.md"])
