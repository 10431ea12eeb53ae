"""Native libraries (OpenCV, FFmpeg, libpng, and TensorFlow for the training side) keep quiet.

Two levels:

- ``quiet_native_logs()`` turns the libraries' own log levels down: OpenCV's logger, FFmpeg's
  through OpenCV (``OPENCV_FFMPEG_LOGLEVEL``, read when OpenCV first opens a video) and PyAV's.
  Library code calls it before it decodes; a value the user set in the environment is kept.
- ``native_stderr_silenced()`` is for console scripts: some libraries write to file descriptor 2
  directly, whatever their log level (libpng's "IDAT: Too much image data", TensorFlow's absl lines
  printed while it is imported). It points descriptor 2 at ``/dev/null`` and keeps Python's
  ``sys.stderr`` (the one-line errors, the progress bar, logging) on the real terminal. With
  ``debug`` it does nothing, so everything shows.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator

AV_LOG_QUIET = -8  # FFmpeg's AV_LOG_QUIET
_done = False


def quiet_native_logs() -> None:
    """Silence OpenCV's and FFmpeg's (and PyAV's, if it is imported) log lines; idempotent."""
    global _done
    if _done:
        return
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", str(AV_LOG_QUIET))
    import cv2

    if os.environ["OPENCV_LOG_LEVEL"].upper() == "SILENT":
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    if "av" in sys.modules:
        import av.logging

        av.logging.set_level(None)
    _done = True


@contextlib.contextmanager
def native_stderr_silenced(*, debug: bool = False) -> Iterator[None]:
    """While inside, what native code writes to descriptor 2 is dropped; Python's stderr still shows.

    Process-wide (descriptors are), so only console scripts use it, around their whole run; child
    processes started inside inherit the silenced descriptor 2. ``sys.stderr`` is moved to a copy
    of the real descriptor when it writes to descriptor 2 (a test's captured stream is left alone).
    """
    if debug:
        yield
        return
    try:
        sys.stderr.flush()
        redirect = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        redirect = False
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    previous = sys.stderr
    try:
        if redirect:
            sys.stderr = open(saved, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
        os.dup2(devnull, 2)
        yield
    finally:
        if redirect:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            sys.stderr = previous
        os.dup2(saved, 2)
        os.close(devnull)
        if not redirect:
            os.close(saved)
        # else ``saved`` stays open: a logging handler made inside holds the stream on it, and its
        # late lines must still reach the terminal, not whatever file takes the number next.


def run_console_command(
    prog: str, command: Callable[[], int], *, debug: bool = False, interrupted: str = "interrupted"
) -> int:
    """Run a console script's ``command`` the way every client-side script does: native libraries
    quiet (unless ``debug``), a ``DeepfakeError`` as one line with its exit code, Ctrl-C as 130."""
    from deepfake_client.errors import DeepfakeError, report_error

    try:
        with native_stderr_silenced(debug=debug):
            if not debug:
                quiet_native_logs()
            return command()
    except DeepfakeError as err:
        return report_error(prog, err, debug=debug)
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
