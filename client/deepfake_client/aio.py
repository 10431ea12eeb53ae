"""``AsyncDetectorClient``: the same scans for asyncio services.

```python
async with AsyncDetectorClient("grpc://tfserving:8500", label="stable") as client:
    verdict = await client.scan_video("upload.mp4")
```

Decoding, face detection and cropping are CPU work that would block an event loop, so each scan
runs on a thread of a bounded pool (``max_concurrency`` scans at once) with the synchronous client:
its gRPC channel multiplexes concurrent calls and its REST transport keeps one keep-alive
connection per thread. The event loop only awaits.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from deepfake_client.client import DetectorClient, VersionInfo
from deepfake_client.verdict import Verdict


class AsyncDetectorClient:
    """Asyncio front of :class:`DetectorClient`; takes the same arguments, plus ``max_concurrency``."""

    def __init__(self, url: str, *, max_concurrency: int = 4, **options: Any):
        self._client = DetectorClient(url, **options)
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="deepfake-scan")

    @property
    def client(self) -> DetectorClient:
        """The synchronous client underneath."""
        return self._client

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))

    async def info(self) -> VersionInfo:
        """The input size, crop margin and threshold of the targeted version."""
        return await self._run(self._client.info)

    async def scan(self, source: str | pathlib.Path) -> Verdict:
        """Scan a video or image file."""
        return await self._run(self._client.scan, source)

    async def scan_video(self, path: str | pathlib.Path) -> Verdict:
        """Scan a video file."""
        return await self._run(self._client.scan_video, path)

    async def scan_image(self, image: str | pathlib.Path | np.ndarray, *, name: str = "<array>") -> Verdict:
        """Scan an image file or RGB uint8 array."""
        return await self._run(self._client.scan_image, image, name=name)

    async def scan_crops(self, crops: np.ndarray | Sequence[np.ndarray], *, name: str = "<crops>") -> Verdict:
        """Score ready face crops."""
        return await self._run(self._client.scan_crops, crops, name=name)

    async def close(self) -> None:
        """Wait for running scans, then close the connections."""
        await asyncio.get_running_loop().run_in_executor(None, partial(self._pool.shutdown, wait=True))
        self._client.close()

    async def __aenter__(self) -> AsyncDetectorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
