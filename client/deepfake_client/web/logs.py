"""The gateway's logs: one JSON object a line, each carrying the id of the request it belongs to.

The request id is the client's ``X-Request-ID`` when it sends a sane one (up to 64 letters, digits
and ``._:-``), else a new random one; the gateway echoes it in the ``X-Request-ID`` response header
and logs it with every line written while the request runs (worker threads included: anyio copies
the context into them), so a user's "request id: ..." finds the lines.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "deepfake_web_request_id", default=None
)
REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}


def request_id_from(header: str | None) -> str:
    """The client's request id when it is sane, else a new one."""
    if header and _SANE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, request id, extras, error."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        import orjson

        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str, log_format: str = "json") -> None:
    """Send every logger's records (uvicorn's too) to stderr, as JSON lines or as text."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
