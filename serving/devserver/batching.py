"""Server-side request batching (``--enable_batching``), after TF Serving's BatchingSession.

The semantics are those of TF Serving 2.20 (``tensorflow_serving/batching/batching_session.cc`` over
TensorFlow's ``core/kernels/batching_util/shared_batch_scheduler.h``), without large-batch
splitting:

- One queue per version, signature and set of outputs; ``num_batch_threads`` threads shared by
  every queue run the batches.
- A queue holds batches; the last one is open. A request joins the open batch if it fits in
  ``max_batch_size`` rows, else it closes that batch and opens a new one; when the queue already
  holds ``max_enqueued_batches`` batches it is refused with UNAVAILABLE and TensorFlow's text.
  A request is never split across batches.
- A batch thread takes a closed batch, or the open one once it is full or its first request has
  waited ``batch_timeout_micros``. While every thread is busy the open batch keeps filling.
- Inputs are concatenated along dimension 0; with ``allowed_batch_sizes`` the batch is padded up to
  the next allowed size with copies of the last request's first row, and the padding rows are
  dropped from the outputs. Tensors of one name must agree past dimension 0 (FAILED_PRECONDITION
  for the whole batch otherwise) unless ``pad_variable_length_inputs``, which pads them with their
  own first value, as ``batching_util.cc`` does.

One deliberate difference: each request's input aliases and dtypes are checked before it is
queued, so a malformed request fails alone with the error it would get without batching (TF
Serving lets it fail the whole batch in the session run).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from serving.devserver.runtime import Servable, check_inputs, select_outputs
from serving.devserver.status import (
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    UNAVAILABLE,
    ServingError,
    invalid_argument,
)


@dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's BatchingParameters; the defaults are TensorFlow's QueueOptions and Options."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_enqueued_batches: int = 10
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self) -> None:
        if self.num_batch_threads < 1:
            raise invalid_argument(f"num_batch_threads must be positive; was {self.num_batch_threads}")
        if self.max_batch_size < 1:
            raise invalid_argument(f"input_batch_size_limit must be positive; was {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            raise invalid_argument(
                f"batch_timeout_micros must be non-negative; was {self.batch_timeout_micros}"
            )
        if self.allowed_batch_sizes and self.allowed_batch_sizes[-1] != self.max_batch_size:
            raise invalid_argument(
                "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                f"{self.allowed_batch_sizes[-1]}; expected {self.max_batch_size}"
            )
        if self.max_enqueued_batches == 0:  # SharedBatchScheduler::AddQueue rewrites 0 to 1
            object.__setattr__(self, "max_enqueued_batches", 1)


def parse_batching_parameters(text: str, *, source: str = "<text>") -> BatchingParameters:
    """Parse BatchingParameters text proto (``max_batch_size { value: 32 }``, ``allowed_batch_sizes: 8``).

    Raises:
        ServingError: INVALID_ARGUMENT for a text that is not a BatchingParameters message (unknown
            fields included, as TF Serving's parser refuses them) or invalid values.
    """
    from google.protobuf import text_format

    from deepfake_client._proto import tfs_pb2

    message = tfs_pb2.BatchingParameters()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as err:
        raise invalid_argument(f"Invalid protobuf file: '{source}'") from err
    values: dict = {}
    for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
        if message.HasField(name):
            values[name] = getattr(message, name).value
    return BatchingParameters(
        **values,
        allowed_batch_sizes=tuple(message.allowed_batch_sizes),
        pad_variable_length_inputs=message.pad_variable_length_inputs,
    )


def read_batching_parameters(path: str) -> BatchingParameters:
    """Read a ``--batching_parameters_file``.

    Raises:
        ServingError: the file does not parse or its values are invalid.
        OSError: the file cannot be read.
    """
    with open(path, encoding="utf-8") as handle:
        return parse_batching_parameters(handle.read(), source=path)


def padded_batch_size(size: int, allowed_batch_sizes: tuple[int, ...]) -> int:
    """RoundToLowestAllowedBatchSize: the smallest allowed size >= ``size`` (``size`` if none)."""
    for allowed in allowed_batch_sizes:
        if allowed >= size:
            return allowed
    return size


@dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    size: int
    done: threading.Event = field(default_factory=threading.Event)
    outputs: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    queued: float = field(default_factory=time.monotonic)


@dataclass
class _Batch:
    tasks: list[_Task] = field(default_factory=list)
    size: int = 0
    opened: float = 0.0  # when its first task arrived (time.monotonic)


@dataclass
class _Queue:
    servable: Servable
    signature_name: str
    outputs: tuple[str, ...]
    batches: deque = field(default_factory=lambda: deque([_Batch()]))
    processing: int = 0


class Batcher:
    """Merges concurrent Predict calls into batches run by ``num_batch_threads`` threads.

    ``metrics`` (a :class:`~serving.devserver.metrics.Metrics`) receives each batch's queuing times.
    """

    def __init__(self, params: BatchingParameters, metrics: object | None = None) -> None:
        self.params = params
        self.metrics = metrics
        self._cond = threading.Condition()
        self._queues: dict[tuple, _Queue] = {}
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{index}", daemon=True)
            for index in range(params.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def predict(
        self,
        *,
        servable: Servable,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> dict[str, np.ndarray]:
        """Run one request as part of a batch; block until its batch has run.

        Raises:
            ServingError: a malformed request (INVALID_ARGUMENT, TF Serving's texts), a full queue
                (UNAVAILABLE) or whatever the batch's run raised.
        """
        key_name, sig = servable.signature(signature_name)
        check_inputs(sig, inputs)
        wanted = select_outputs(sig, output_filter)
        size = self._task_size(inputs)
        if size > self.params.max_batch_size:
            raise invalid_argument(
                f"Task size {size} is larger than maximum input batch size {self.params.max_batch_size}"
            )
        outputs = tuple(sorted(wanted))
        key = (id(servable), key_name, outputs)
        task = _Task(inputs=inputs, size=size)
        with self._cond:
            if self._closed:
                raise ServingError(UNAVAILABLE, "The batch scheduler is shutting down")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(servable, key_name, outputs)
            self._schedule(queue, task)
            self._cond.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        assert task.outputs is not None
        return {alias: task.outputs[alias] for alias in wanted}

    @staticmethod
    def _task_size(inputs: Mapping[str, np.ndarray]) -> int:
        """ComputeTensorBatchSize (batching_util.h)."""
        if not inputs:
            raise invalid_argument("Batching Run() must have at least one input tensor")
        sizes = set()
        for array in inputs.values():
            if array.ndim == 0:
                raise invalid_argument("Batching Run() input tensors must have at least one dimension")
            sizes.add(array.shape[0])
        if len(sizes) > 1:
            raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
        return sizes.pop()

    def _schedule(self, queue: _Queue, task: _Task) -> None:
        """Queue::Schedule without splitting (call with the lock held)."""
        limit = self.params.max_batch_size
        if queue.batches[-1].size + task.size > limit:
            if len(queue.batches) >= self.params.max_enqueued_batches:
                raise ServingError(
                    UNAVAILABLE,
                    "The batch scheduling queue to which this task was submitted is full; currently "
                    f"{len(queue.batches)} batches enqueued and max_enqueued_batches is "
                    f"{self.params.max_enqueued_batches}",
                )
            queue.batches.append(_Batch())
        batch = queue.batches[-1]
        if not batch.tasks:
            batch.opened = time.monotonic()
        batch.tasks.append(task)
        batch.size += task.size

    def _take(self, now: float) -> tuple[tuple, _Queue, _Batch] | float | None:
        """The oldest schedulable batch, else the time until the next open batch times out."""
        timeout_s = self.params.batch_timeout_micros / 1e6
        best, wait_s = None, None
        for key, queue in self._queues.items():
            first = queue.batches[0]
            if not first.tasks:
                continue
            due = self._closed or len(queue.batches) > 1 or first.size >= self.params.max_batch_size
            if due or now >= first.opened + timeout_s:
                if best is None or first.opened < best[2].opened:
                    best = (key, queue, first)
            else:
                remaining = first.opened + timeout_s - now
                wait_s = remaining if wait_s is None else min(wait_s, remaining)
        if best is None:
            return wait_s
        key, queue, batch = best
        queue.batches.popleft()
        if not queue.batches:
            queue.batches.append(_Batch())
        queue.processing += 1
        return best

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed and not any(q.batches[0].tasks for q in self._queues.values()):
                        return
                    found = self._take(time.monotonic())
                    if isinstance(found, tuple):
                        break
                    self._cond.wait(found)
            key, queue, batch = found
            try:
                self._run(queue, batch)
            finally:
                with self._cond:
                    queue.processing -= 1
                    if not queue.processing and len(queue.batches) == 1 and not queue.batches[0].tasks:
                        if self._queues.get(key) is queue:
                            del self._queues[key]

    def _merge(self, batch: _Batch, target: int) -> dict[str, np.ndarray]:
        """MergeInputTensors: concatenate, pad variable lengths and pad to the allowed size."""
        merged = {}
        for name in batch.tasks[0].inputs:
            parts = [task.inputs[name] for task in batch.tasks]
            if self.params.pad_variable_length_inputs:
                parts = _pad_to_common_shape(parts)
            elif any(p.shape[1:] != parts[0].shape[1:] for p in parts[1:]):
                raise ServingError(
                    FAILED_PRECONDITION,
                    f"Tensors with name '{name}' from different tasks have different shapes and padding "
                    "is turned off.Set pad_variable_length_inputs to true, or ensure that all tensors "
                    "with the same namehave equal dimensions starting with the first dim.",
                )
            if target > batch.size:
                parts.append(np.repeat(parts[-1][:1], target - batch.size, axis=0))
            merged[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return merged

    def _run(self, queue: _Queue, batch: _Batch) -> None:
        try:
            if self.metrics is not None:
                now = time.monotonic()
                self.metrics.observe_batch(queued_s=[now - task.queued for task in batch.tasks])  # type: ignore[attr-defined]
            target = padded_batch_size(batch.size, self.params.allowed_batch_sizes)
            outputs = queue.servable.predict(
                signature_name=queue.signature_name,
                inputs=self._merge(batch, target),
                output_filter=queue.outputs,
            )
            for array in outputs.values():
                if array.ndim == 0:
                    raise ServingError(FAILED_PRECONDITION, "Batched output tensor has 0 dimensions")
                if array.shape[0] != target:
                    raise ServingError(
                        FAILED_PRECONDITION,
                        "Batched output tensor's 0th dimension does not equal the sum of the 0th "
                        "dimension sizes of the input tensors",
                    )
            offset = 0
            for task in batch.tasks:
                task.outputs = {n: a[offset : offset + task.size] for n, a in outputs.items()}
                offset += task.size
        except BaseException as err:  # noqa: BLE001 - every waiting request gets the batch's error
            for task in batch.tasks:
                task.error = err
        finally:
            for task in batch.tasks:
                task.done.set()

    def close(self, timeout_s: float = 10.0) -> None:
        """Refuse new requests, run what is queued, stop the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)


def _pad_to_common_shape(parts: list[np.ndarray]) -> list[np.ndarray]:
    """AddPadding (batching_util.cc): pad every dimension but the 0th up to the largest, with the
    tensor's own first value."""
    if any(p.ndim != parts[0].ndim for p in parts):
        raise ServingError(INVALID_ARGUMENT, "Ranks of all input tensors should match")
    if not 1 <= parts[0].ndim <= 6:
        raise ServingError(INVALID_ARGUMENT, "Only tensors with rank from 1 to 6 can be padded.")
    biggest = np.max([p.shape for p in parts], axis=0)
    out = []
    for part in parts:
        widths = [(0, 0)] + [(0, int(m - d)) for m, d in zip(biggest[1:], part.shape[1:], strict=True)]
        if not any(after for _, after in widths):
            out.append(part)
            continue
        if part.size < 1:
            raise ServingError(INVALID_ARGUMENT, "Got empty tensor in batch of non-empty tensors.")
        out.append(np.pad(part, widths, mode="constant", constant_values=part.reshape(-1)[0]))
    return out
