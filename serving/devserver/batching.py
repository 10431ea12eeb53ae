"""Server-side request batching (``--enable_batching``), after TF Serving's BatchingSession.

Requests for the same version, signature and per-example input shapes are queued together; a
batch runs when it holds ``max_batch_size`` examples or its oldest request has waited
``batch_timeout_micros``. Inputs are concatenated along dimension 0 and the outputs split back.
When the queue already holds ``max_enqueued_batches`` batches, a request is refused with
UNAVAILABLE, as TF Serving does.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from serving.devserver.runtime import Servable
from serving.devserver.status import UNAVAILABLE, ServingError, invalid_argument


@dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's BatchingParameters (the defaults are its own)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = 4
    max_enqueued_batches: int = 10


def read_batching_parameters(path: str) -> BatchingParameters:
    """Parse a ``--batching_parameters_file`` (text proto: ``max_batch_size { value: 32 }`` ...)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
        match = re.search(rf"\b{name}\s*\{{\s*value\s*:\s*(\d+)\s*\}}", text)
        if match:
            values[name] = int(match.group(1))
    return BatchingParameters(**values)


@dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    size: int
    enqueued: float
    done: threading.Event = field(default_factory=threading.Event)
    outputs: dict[str, np.ndarray] | None = None
    error: BaseException | None = None


@dataclass
class _Queue:
    servable: Servable
    signature_name: str
    output_filter: tuple[str, ...]
    tasks: deque = field(default_factory=deque)
    pending: int = 0


class Batcher:
    """Merges concurrent Predict calls into batches run by ``num_batch_threads`` threads."""

    def __init__(self, params: BatchingParameters) -> None:
        self.params = params
        self._cond = threading.Condition()
        self._queues: dict[tuple, _Queue] = {}
        for index in range(max(1, params.num_batch_threads)):
            threading.Thread(target=self._work, name=f"batch-{index}", daemon=True).start()

    def predict(
        self,
        *,
        servable: Servable,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> dict[str, np.ndarray]:
        """Run one request as part of a batch.

        Raises:
            ServingError: bad batch dimensions (INVALID_ARGUMENT), a full queue (UNAVAILABLE) or
                whatever the batch's run raised.
        """
        sizes = set()
        for array in inputs.values():
            if array.ndim == 0:
                raise invalid_argument("Batching Run() input tensors must have at least one dimension")
            sizes.add(array.shape[0])
        if len(sizes) > 1:
            raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
        size = sizes.pop() if sizes else 0
        if size > self.params.max_batch_size:
            raise invalid_argument(
                f"Task size {size} is larger than maximum input batch size {self.params.max_batch_size}"
            )
        key = (
            id(servable),
            signature_name,
            output_filter,
            tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in inputs.items())),
        )
        task = _Task(inputs=inputs, size=size, enqueued=time.monotonic())
        with self._cond:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(servable, signature_name, output_filter)
            batches = -(-(queue.pending + size) // self.params.max_batch_size)
            if batches > self.params.max_enqueued_batches:
                raise ServingError(
                    UNAVAILABLE, "The batch scheduling queue to which this task was submitted is full"
                )
            queue.tasks.append(task)
            queue.pending += size
            self._cond.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        assert task.outputs is not None
        return task.outputs

    def _ready(self, now: float) -> tuple[tuple, _Queue] | None:
        timeout_s = self.params.batch_timeout_micros / 1e6
        for key, queue in self._queues.items():
            if queue.tasks and (
                queue.pending >= self.params.max_batch_size or now - queue.tasks[0].enqueued >= timeout_s
            ):
                return key, queue
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    found = self._ready(time.monotonic())
                    if found:
                        break
                    self._cond.wait(
                        max(self.params.batch_timeout_micros / 1e6, 0.0005)
                        if any(q.tasks for q in self._queues.values())
                        else None
                    )
                key, queue = found
                batch, total = [], 0
                while queue.tasks and total + queue.tasks[0].size <= self.params.max_batch_size:
                    task = queue.tasks.popleft()
                    batch.append(task)
                    total += task.size
                queue.pending -= total
                if not queue.tasks:
                    del self._queues[key]
            self._run(queue, batch, total)

    def _run(self, queue: _Queue, batch: list[_Task], total: int) -> None:
        try:
            names = list(batch[0].inputs)
            merged = {
                n: np.concatenate([t.inputs[n] for t in batch]) if len(batch) > 1 else batch[0].inputs[n]
                for n in names
            }
            outputs = queue.servable.predict(
                signature_name=queue.signature_name, inputs=merged, output_filter=queue.output_filter
            )
            for name, array in outputs.items():
                if array.ndim == 0 or array.shape[0] != total:
                    raise ServingError(
                        "INTERNAL",
                        f"Batched output tensor {name} has 0th dimension "
                        f"{array.shape[0] if array.ndim else 0}, expected {total}",
                    )
            offset = 0
            for task in batch:
                task.outputs = {n: a[offset : offset + task.size] for n, a in outputs.items()}
                offset += task.size
        except BaseException as err:  # noqa: BLE001 - every waiting request gets the batch's error
            for task in batch:
                task.error = err
        finally:
            for task in batch:
                task.done.set()
