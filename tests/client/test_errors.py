"""Contract 5: one error base, each subclass with its exit code, HTTP status and gRPC code; one line."""

from __future__ import annotations

import pytest

from deepfake_client.errors import (
    DeadlineExceededError,
    DeepfakeError,
    InvalidInputError,
    NotFoundError,
    ServerUnavailableError,
    report_error,
)


@pytest.mark.parametrize(
    ("cls", "exit_code", "http", "grpc"),
    [
        (InvalidInputError, 2, 400, "INVALID_ARGUMENT"),
        (NotFoundError, 3, 404, "NOT_FOUND"),
        (ServerUnavailableError, 4, 503, "UNAVAILABLE"),
        (DeadlineExceededError, 4, 504, "DEADLINE_EXCEEDED"),
    ],
)
def test_codes(cls: type[DeepfakeError], exit_code: int, http: int, grpc: str) -> None:
    assert issubclass(cls, DeepfakeError)
    assert (cls.exit_code, cls.http_status, cls.grpc_code) == (exit_code, http, grpc)


def test_report_is_one_line_with_the_exit_code(capsys) -> None:
    assert report_error("tool", NotFoundError("clip.mp4: no such file"), where="clip.mp4") == 3
    assert capsys.readouterr().err == "tool: error (exit 3): clip.mp4: no such file\n"
    assert report_error("tool", InvalidInputError("bad header"), where="a.png") == 2
    assert capsys.readouterr().err == "tool: error (exit 2): a.png: bad header\n"


def test_report_of_a_surprise_and_debug_traceback(capsys) -> None:
    try:
        raise KeyError("x")
    except KeyError as err:
        assert report_error("tool", err, debug=True) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1] == "tool: error (exit 1): KeyError: 'x'"
