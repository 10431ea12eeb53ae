"""TensorFlow console scripts: TensorFlow's, absl's and native libraries' lines never reach the terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import os, sys
from training.quiet import quiet_tensorflow
with quiet_tensorflow(debug={debug}):
    import tensorflow as tf
    tf.function(lambda x: x * 2)(tf.constant([1.0]))
    os.write(2, b"native line\\n")   # what libpng or absl do: straight to descriptor 2
    print("own line", file=sys.stderr)  # the script's own lines still show
print("done", file=sys.stderr)
"""


@pytest.mark.needs_tf
@pytest.mark.slow
def test_importing_tensorflow_inside_quiet_tensorflow_prints_only_the_scripts_own_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(debug=False)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "own line\ndone\n"


@pytest.mark.needs_tf
@pytest.mark.slow
def test_debug_lets_everything_through() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(debug=True)], capture_output=True, text=True, timeout=120
    )
    assert "native line" in done.stderr and "own line" in done.stderr


def test_a_tensorflow_cli_error_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [sys.executable, "-m", "export.cli", str(tmp_path / "no-run"), "--repository", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "no such run folder" in done.stderr
