"""The one error hierarchy of deepfake-serving (Contract 5).

Every error the project raises on purpose is a :class:`DeepfakeError`. Each subclass carries the
exit code a CLI returns, the HTTP status a gateway answers with and the gRPC status code name a
server answers with. CLIs print ``str(error)`` on one line and exit with ``error.exit_code``.
"""

from __future__ import annotations


class DeepfakeError(Exception):
    """Base class of every error deepfake-serving raises on purpose."""

    exit_code: int = 1
    http_status: int = 500
    grpc_code: str = "INTERNAL"


class InvalidInputError(DeepfakeError):
    """Raised for input that cannot be used: a bad file, video, image, config, tensor or flag."""

    exit_code = 2
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class NotFoundError(DeepfakeError):
    """Raised when a model, version, label, signature or path does not exist."""

    exit_code = 3
    http_status = 404
    grpc_code = "NOT_FOUND"


class ServerUnavailableError(DeepfakeError):
    """Raised when the model server cannot be reached, is overloaded or not ready."""

    exit_code = 4
    http_status = 503
    grpc_code = "UNAVAILABLE"


class DeadlineExceededError(ServerUnavailableError):
    """Raised when a call to the model server did not finish within its timeout."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"


def report_error(prog: str, error: BaseException, *, debug: bool = False, where: str = "") -> int:
    """Print ``error`` as the one line a CLI shows on stderr; return its exit code.

    With ``debug`` the traceback comes first. ``where`` (a file name, say) prefixes the message
    unless the message already names it. An error that is not a :class:`DeepfakeError` (a bug or
    a library's surprise) still gets one line, and exit code 1.
    """
    import sys

    if debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    code = error.exit_code if isinstance(error, DeepfakeError) else 1
    print(f"{prog}: error (exit {code}): {error_message(error, where=where)}", file=sys.stderr)
    return code


def error_message(error: BaseException, *, where: str = "") -> str:
    """The one-line text of ``error`` as ``report_error`` shows it (without the program's prefix)."""
    prefix = f"{where}: " if where and where not in str(error) else ""
    text = str(error) if isinstance(error, DeepfakeError) else f"{type(error).__name__}: {error}"
    return prefix + " ".join(line.strip() for line in text.splitlines() if line.strip())
