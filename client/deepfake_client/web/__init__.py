"""The upload page and HTTP gateway (``deepfake-web``): upload a video or image, get the verdict.

Needs the ``web`` extra (starlette, uvicorn, python-multipart). See ``app.create_app`` and ``cli``.
"""
