"""Background request load for the serving tests: threads that send until the ``with`` block ends."""

from __future__ import annotations

import threading
from collections.abc import Callable


class ThreadedLoad:
    """Worker threads added with ``spawn``, started on entering the ``with`` block, stopped on leaving.

    Workers loop until ``self.stop`` is set; ``self.lock`` guards what they record.
    """

    def __init__(self, join_timeout_s: float = 30.0) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.join_timeout_s = join_timeout_s

    def spawn(self, target: Callable[..., None], *args: object) -> None:
        self.threads.append(threading.Thread(target=target, args=args, daemon=True))

    def close(self) -> None:
        """Release what the workers used, once they have stopped (nothing by default)."""

    def __enter__(self) -> ThreadedLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(self.join_timeout_s)
        self.close()
