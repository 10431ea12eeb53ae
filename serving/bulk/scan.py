"""``deepfake-bulk scan``: every source scored once, by a pool of Ray workers, into a folder of parts.

The driver lists the sources (:mod:`serving.bulk.sources`), leaves out those the output folder
already has a final row for (resume), cuts the rest into shards and hands them to a pool of
:class:`ScanWorker` actors (:func:`serving.bulk.engine.map_rows`). Each worker holds one
``DetectorClient`` (its connections to every replica and its face detector), scans its shard's
sources with the client's one scan path (``DetectorClient.scan``) and writes the shard's rows as
one part (:mod:`serving.bulk.parts`); the driver only counts. At the end the parts are merged into
``verdicts.jsonl``, one row per source.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import pathlib
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from deepfake_client.errors import DeepfakeError, error_message
from serving.bulk import parts
from serving.bulk.metrics import BulkMetrics
from serving.bulk.sources import expand_sources, local_copy

DEFAULT_MAX_SHARD = 64


class ScanWorker:
    """One Ray actor: a ``DetectorClient`` kept for every shard it scans.

    Args:
        out: the output folder.
        client: ``DetectorClient`` keyword arguments (``url`` included).
        faces: rows include every face.
    """

    def __init__(self, out: str, client: dict[str, Any], faces: bool = False):
        from deepfake_client.client import DetectorClient
        from deepfake_client.quiet import quiet_native_logs

        quiet_native_logs()
        self.out = pathlib.Path(out)
        self.client = DetectorClient(**client)
        self.faces = faces

    def __call__(self, shard: dict[str, Any]) -> dict[str, Any]:
        """Scan the shard's sources (the next one is decoded and cropped while one is scored, as
        ``deepfake-scan`` does) and write its part; return the counts."""
        from concurrent.futures import ThreadPoolExecutor

        from deepfake_client.rows import RowWriter

        lines: list[str] = []
        rows = RowWriter("json", faces=self.faces, write=lines.append)
        failed = 0
        with ThreadPoolExecutor(1, thread_name_prefix="deepfake-prepare") as pool:
            sources = iter(shard["sources"])
            pending: deque = deque()

            def refill() -> None:
                source = next(sources, None)
                if source is not None:
                    pending.append((source, pool.submit(self._prepare, source)))

            refill()
            while pending:
                source, future = pending.popleft()
                refill()
                stage = parts.STAGE_INPUT  # reading the file, finding its faces
                try:
                    stack, prepared = future.result()
                    stage = parts.STAGE_SCORE  # the servers' answer: not about the file
                    with stack:
                        verdict = self.client.score(prepared)
                except Exception as err:  # noqa: BLE001 - every source gets a row, whatever went wrong
                    code = err.exit_code if isinstance(err, DeepfakeError) else 1
                    rows.error(source, error_message(err, where=source), code, stage=stage)
                    failed += 1
                else:
                    rows.verdict(dataclasses.replace(verdict, source=source))
        parts.write_part(self.out, shard["part"], lines)
        return {"part": shard["part"], "scanned": len(shard["sources"]), "failed": failed}

    def _prepare(self, source: str) -> tuple[contextlib.ExitStack, Any]:
        """The source's local copy (kept until it is scored: a re-crop reads it again) and its faces."""
        stack = contextlib.ExitStack()
        try:
            path = stack.enter_context(local_copy(source))
            return stack, self.client.prepare(path)
        except BaseException:
            stack.close()
            raise


def shard_size(todo: int, workers: int) -> int:
    """About four shards per worker (balance, and progress that moves), at most 64 sources each."""
    return max(1, min(DEFAULT_MAX_SHARD, math.ceil(todo / (workers * 4))))


def run_scan(
    sources: list[str],
    out: str | pathlib.Path,
    *,
    client: dict[str, Any],
    manifests: list[str] | None = None,
    workers: int = 2,
    cpus_per_worker: float = 1.0,
    shard: int | None = None,
    faces: bool = False,
    retry_errors: bool = False,
    address: str | None = None,
    debug: bool = False,
    progress: bool = True,
    pushgateway: str | None = None,
) -> dict[str, Any]:
    """Scan every source into ``out`` (see the module); return the run's summary.

    Progress also goes to ``out/progress.prom`` and, if given, the Prometheus ``pushgateway``
    (``serving.bulk.metrics``).

    Raises:
        DeepfakeError: bad arguments, an output folder that is not ours, or the server/model
            missing (checked once, before any worker starts).
    """
    from deepfake_client.client import DetectorClient

    started = time.monotonic()
    info = {"command": "scan", "model": client.get("model"), "target": _target(client)}
    found, unusable = expand_sources(sources, manifests or ())
    parts.open_output(out, info, create=False)  # refuse a folder that is not ours before anything
    with DetectorClient(**{**client, "retry_for_s": min(client.get("retry_for_s", 30.0), 10.0)}) as probe:
        probe.info()  # the server list and the model: fail once, here, not in every worker
    out = parts.open_output(out, info)
    if unusable:  # arguments that name nothing: their rows, as deepfake-scan writes them
        from deepfake_client.rows import RowWriter

        lines: list[str] = []
        rows = RowWriter("json", write=lines.append)
        for source, err in sorted(unusable.items()):
            rows.error(source, error_message(err, where=source), err.exit_code)
        name = hashlib.sha256("\n".join(sorted(unusable)).encode()).hexdigest()[:20]
        parts.write_part(out, f"part-unusable-{name}.jsonl", lines)
    done = parts.final_rows(parts.merge_rows(out), retry_errors=retry_errors)
    todo = [s for s in found if s not in done]
    size = shard or shard_size(len(todo), workers)
    shards = parts.shard_sources(todo, size)
    counts = {"scanned": 0, "failed": 0}
    first, last = (0.0, 0), 0.0
    bar = _progress(len(todo), progress)
    metrics = BulkMetrics("scan", len(todo), pathlib.Path(out) / "progress.prom", pushgateway)
    failure = None
    if shards:
        from serving.bulk.engine import DEFAULT_TASK_RETRIES, ISOLATED_TASK_RETRIES, map_rows, ray_session

        def run(batch: list[dict], task_retries: int, in_flight: int = 2) -> list[dict]:
            """Scan ``batch``'s shards; return those whose worker died on every try."""
            nonlocal first, last
            results = map_rows(
                batch,
                ScanWorker,
                {"out": str(out), "client": client, "faces": faces},
                workers=workers,
                cpus_per_worker=cpus_per_worker,
                task_retries=task_retries,
                keep_going=True,
                in_flight=in_flight,
            )
            finished = set()
            for result in results:
                if not counts["scanned"]:  # the pipeline is warm from here on (see the summary)
                    first = (time.monotonic() - started, result["scanned"])
                last = time.monotonic() - started
                finished.add(result["part"])
                count(result["scanned"], result["failed"])
            return [s for s in batch if s["part"] not in finished]

        def count(scanned: int, failed: int) -> None:
            counts["scanned"] += scanned
            counts["failed"] += failed
            bar(scanned, counts["failed"])
            metrics.update(scanned, counts["failed"])

        with ray_session(address, cpus=math.ceil(workers * cpus_per_worker), debug=debug):
            try:
                lost = run(shards, DEFAULT_TASK_RETRIES)
                # A shard whose worker died on every try (a file that crashes a native decoder, or
                # one too big for the worker's memory) is scanned again source by source, one
                # source queued per worker so that a death is that source's alone: only the source
                # that still kills its worker goes without a verdict, with a row saying so.
                if lost:
                    singles = parts.shard_sources([src for s in lost for src in s["sources"]], 1)
                    crashed = run(singles, ISOLATED_TASK_RETRIES, in_flight=1)
                    if crashed:
                        _write_crashed(out, [s["sources"][0] for s in crashed])
                        count(len(crashed), len(crashed))
            except Exception as err:  # noqa: BLE001 - Ray itself gave up: keep what is done
                failure = err
    bar(0, counts["failed"], close=True)
    metrics.close()
    merged = parts.merge_rows(out)
    path = parts.write_merged(out, merged)
    missing = [s for s in found if s not in merged]
    elapsed = time.monotonic() - started
    summary = {
        "out": str(path),
        "sources": len(found) + len(unusable),
        "skipped": len(found) - len(todo),
        "scanned": counts["scanned"],
        "failed": counts["failed"],
        "missing": len(missing),
        "verdicts": sum("error" not in r for r in merged.values()),
        "errors": sum("error" in r for r in merged.values()),
        "workers": workers,
        "shards": len(shards),
        "seconds": round(elapsed, 3),
        "rate_per_s": round(counts["scanned"] / elapsed, 3) if elapsed > 0 else None,
        # after the first shard's result: Ray and its workers started, their clients connected
        "first_result_s": round(first[0], 3),
        "first_result_files": first[1],
        # the last shard's result: what comes after (merge, Ray's shutdown) is paid once per job
        "last_result_s": round(last, 3),
        "exit_code": max([r.get("exit_code", 0) for r in merged.values()] + [1 if missing else 0]),
    }
    if failure is not None:
        summary["engine_error"] = error_message(failure)
    return summary


def _write_crashed(out: pathlib.Path, sources: list[str]) -> None:
    """The rows of sources whose worker died on every try, as one part."""
    from deepfake_client.rows import RowWriter

    lines: list[str] = []
    rows = RowWriter("json", write=lines.append)
    for source in sorted(sources):
        message = (
            f"{source}: the worker scanning it died on every try, the last ones with nothing else "
            "queued (a crash in a native decoder, or out of memory); the rest of its shard was "
            "scanned, and a re-run tries it again"
        )
        rows.error(source, message, 1, stage=parts.STAGE_WORKER)
    name = hashlib.sha256("\n".join(sorted(sources)).encode()).hexdigest()[:20]
    parts.write_part(out, f"part-crashed-{name}.jsonl", lines)


def _target(client: dict[str, Any]) -> str:
    if client.get("version") is not None:
        return f"version:{client['version']}"
    return f"label:{client['label']}" if client.get("label") else "latest"


def _progress(total: int, enabled: bool) -> Callable[..., None]:
    """``update(n, failed, close=False)``: done / failed / rate on stderr (tqdm)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="file", desc="deepfake-bulk scan", file=sys.stderr, disable=not enabled)

    def update(n: int, failed: int, close: bool = False) -> None:
        bar.set_postfix(failed=failed, refresh=False)
        bar.update(n)
        if close:
            bar.close()

    return update
