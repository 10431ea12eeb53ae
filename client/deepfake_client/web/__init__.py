"""The upload page and HTTP gateway (``deepfake-web``): upload a video or image, get the verdict per person.

Needs the ``web`` extra (starlette, uvicorn, python-multipart, prometheus-client). Modules:
``app`` (routes, ``create_app``), ``cli``, ``upload`` (streaming a body to disk, the input gate,
storage errors), ``guard`` (slots and timeouts against slow and abusive clients), ``auth`` (token,
mutual TLS, bind address), ``middleware`` (request ids, token check, access log), ``logs`` (JSON
lines), ``metrics`` (Prometheus), ``openapi``.
"""
