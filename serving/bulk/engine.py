"""The engine under ``deepfake-bulk``: Ray Data, on a local cluster or an existing one (KubeRay).

One helper, :func:`map_rows`, runs a callable class over rows with Ray Data's own machinery:

- an **actor pool** (``ActorPoolStrategy(size=workers)``): each worker process builds its state
  once (a ``DetectorClient`` with its connections and its face detector) and keeps it for every
  row it is given;
- **one block per row**, handed to the pool one at a time (``batch_size=1``): a row is the unit
  that is retried;
- **retries and restarts**: an actor that dies (killed, out of memory, its node gone) is restarted
  (``max_restarts``) and the task it was running is retried on the pool (``max_task_retries``);
- **backpressure**: Ray Data's streaming executor only hands out as many rows as the pool can
  take and only keeps as many results as the consumer has not read yet.

Ray's own logs and progress bars stay off the terminal unless ``debug``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

DEFAULT_TASK_RETRIES = 3  # a row whose worker died this many times in a row fails the run
ISOLATED_TASK_RETRIES = 1  # a row tried again alone (after it failed): its worker may die twice
OBJECT_STORE_BYTES = 256 << 20  # a local cluster's object store: rows and results are small


@contextlib.contextmanager
def ray_session(address: str | None, *, cpus: int, debug: bool = False) -> Iterator[None]:
    """Connect to the cluster at ``address`` (``auto``, ``ray://...``, ``RAY_ADDRESS``), or start a
    local one with ``cpus`` CPUs (at least the machine's); disconnect (or stop it) at the end.

    Ray's driver prints its workers' failures ("task failed, 3 retries remaining") on stdout, which
    is the command's: while inside, stdout goes to stderr under ``debug`` and nowhere otherwise.
    """
    import ray

    if ray.is_initialized():  # a caller's session (tests, notebooks): theirs to end
        yield
        return
    with contextlib.redirect_stdout(sys.stderr if debug else io.StringIO()):
        _start(address, cpus, debug)
        try:
            yield
        finally:
            ray.shutdown()


def _start(address: str | None, cpus: int, debug: bool) -> None:
    import ray

    level = logging.INFO if debug else logging.ERROR
    for name in ("ray", "ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(level)
    options: dict[str, Any] = dict(log_to_driver=debug, logging_level=level, include_dashboard=False)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        try:
            ray.init(address=address, **options)
        except ConnectionError as err:
            from deepfake_client.errors import ServerUnavailableError

            raise ServerUnavailableError(f"cannot reach the Ray cluster at {address}: {err}") from err
    else:
        ray.init(
            num_cpus=max(cpus, os.cpu_count() or 1),
            object_store_memory=OBJECT_STORE_BYTES,
            **options,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    for name in ("ray", "ray.data", "ray.data._internal"):  # ray.init configures its loggers again
        logging.getLogger(name).setLevel(level)


def map_rows(
    rows: list[dict],
    worker: type,
    kwargs: dict[str, Any],
    *,
    workers: int,
    cpus_per_worker: float = 1.0,
    task_retries: int = DEFAULT_TASK_RETRIES,
    keep_going: bool = False,
    in_flight: int = 2,
) -> Iterator[dict[str, Any]]:
    """``worker(**kwargs)(row)`` for every row on a pool of ``workers`` actors; results as they come.

    ``worker.__call__`` takes one row (a dict of plain values) and returns one result dict. Results
    arrive in completion order, each exactly once (a retried row's result is only read once its
    retry finished). A row whose worker died ``1 + task_retries`` times (a file that crashes a
    native decoder, a worker out of memory) fails the whole map, unless ``keep_going``: then it has
    no result and the others go on (Ray Data's ``max_errored_blocks``; the caller finds the rows
    without a result). ``in_flight`` rows are queued on an actor at once: when it dies, every one
    of them counts a try, so a pass that must blame one row alone (isolating a crash) takes 1.
    """
    import ray

    context = ray.data.DataContext.get_current()
    previous = context.max_errored_blocks
    context.max_errored_blocks = -1 if keep_going else previous
    # Ray Data logs each row it gives up on (at ERROR, with the worker's traceback); the caller
    # reports those rows itself, so the log stays off the terminal unless it is --debug's.
    log = logging.getLogger("ray.data._internal.execution.streaming_executor_state")
    level = log.level
    if keep_going and logging.getLogger("ray.data").getEffectiveLevel() >= logging.ERROR:
        log.setLevel(logging.CRITICAL)
    try:
        # no more actors than rows (Ray Data warns of idle actors otherwise)
        pool = min(workers, max(1, len(rows)))
        yield from _map(rows, worker, kwargs, pool, cpus_per_worker, task_retries, in_flight)
    finally:
        context.max_errored_blocks = previous
        log.setLevel(level)


def _map(
    rows: list[dict],
    worker: type,
    kwargs: dict[str, Any],
    workers: int,
    cpus_per_worker: float,
    task_retries: int,
    in_flight: int,
) -> Iterator[dict[str, Any]]:
    import warnings

    import ray

    dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing the actors' options this way and has no other for them yet
        warnings.simplefilter("ignore", DeprecationWarning)
        mapped = dataset.map_batches(
            _RowAdapter,
            fn_constructor_kwargs={"worker": worker, "kwargs": kwargs},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=in_flight),
            num_cpus=cpus_per_worker,
            max_restarts=-1,
            max_task_retries=task_retries,
        )
    for result in mapped.iter_rows():
        yield dict(result)


class _RowAdapter:
    """Ray Data hands a batch of columns; the worker gets a row and returns a row."""

    def __init__(self, worker: type, kwargs: dict[str, Any]):
        self.worker = worker(**kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        row = {name: _plain(values[0]) for name, values in batch.items()}
        result = self.worker(row)
        return {name: np.asarray([value], dtype=object) for name, value in result.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Apply:
    """A worker that applies one picklable function to a pickled argument (``{"arg": bytes}``) and
    returns its (JSON-able) result as ``{"result": bytes}``."""

    def __init__(self, fn: bytes, setup: Callable[[], None] | None = None):
        if setup is not None:
            setup()
        self.fn = pickle.loads(fn)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"result": pickle.dumps(self.fn(pickle.loads(row["arg"])))}
