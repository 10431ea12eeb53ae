"""TensorFlow and absl keep quiet in the project's TensorFlow console scripts.

Importing TensorFlow 2.20 on a machine without a GPU prints about ten lines before any of the
project's own (cuFFT / cuDNN / cuBLAS factory registration, "computation placer already
registered", cuInit, the oneDNN and CPU-feature notes). Some are written by absl before its log is
initialised, straight to file descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says. So a console
script runs its command inside :func:`quiet_tensorflow`, entered *before* TensorFlow is imported:

- ``TF_CPP_MIN_LOG_LEVEL=3`` and absl's and the ``tensorflow`` Python logger's level at ERROR;
- OpenCV and FFmpeg quiet (``deepfake_client.quiet.quiet_native_logs``);
- descriptor 2 pointed at ``/dev/null`` while Python's ``sys.stderr`` (the scripts' own lines,
  progress bars, logging, one-line errors) still reaches the terminal
  (``deepfake_client.quiet.native_stderr_silenced``).

With ``debug`` nothing is silenced. Every TensorFlow console script uses it: ``deepfake-prepare``,
``deepfake-train``, ``deepfake-evaluate``, ``deepfake-export``, ``deepfake-demo``, and the dev
server's and the rollout's scripts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from deepfake_client.quiet import native_stderr_silenced, quiet_native_logs


def quiet_tensorflow_logs() -> None:
    """Turn TensorFlow's and absl's own log levels down (before TensorFlow is imported); idempotent.

    A value the user put in the environment is kept.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")  # absl's C++ log (absl >= 2023)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


@contextlib.contextmanager
def quiet_tensorflow(*, debug: bool = False) -> Iterator[None]:
    """While inside, TensorFlow, absl, OpenCV, FFmpeg and libpng write nothing to the terminal."""
    if debug:
        yield
        return
    quiet_tensorflow_logs()
    quiet_native_logs()
    with native_stderr_silenced():
        yield
