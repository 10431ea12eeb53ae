"""``deepfake-bulk prepare``: ``deepfake-prepare`` with its videos cropped by a pool of Ray workers.

The same parser, settings checks, resume and manifest as ``deepfake-prepare``
(``training.cli.prepare_main`` and ``training.prepare.prepare_dataset``); only the map over the
videos changes: each video's ``crop_item`` (training's one preparation path) runs on a Ray worker,
which keeps its face detector for every video it is given. The driver appends each finished
video's record to ``manifest.jsonl`` the moment Ray hands it over, once: a video whose worker died
is cropped again from scratch (``crop_item`` clears its folder first) and its record is read once.
A re-run skips the videos in the manifest.
"""

from __future__ import annotations

import argparse
import math
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def prepare_parser() -> argparse.ArgumentParser:
    """``deepfake-prepare``'s parser, with the engine's options."""
    from training.cli import prepare_parser as training_parser

    parser = training_parser()
    parser.prog = "deepfake-bulk prepare"
    parser.description = (parser.description or "") + " The videos are cropped by a pool of Ray workers."
    for action in parser._actions:
        if action.dest == "workers":
            action.default, action.help = 2, "Ray workers (default 2)"
    parser.add_argument("--address", help="a Ray cluster (default env RAY_ADDRESS, else a local one)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves")
    return parser


def ray_mapper(args: argparse.Namespace) -> Callable[[Callable[[Any], dict], Sequence[Any]], Iterator[dict]]:
    """The ``map_items`` of ``prepare_dataset`` for these arguments: ``crop`` over items on Ray."""
    from deepfake_client.errors import InvalidInputError

    if args.workers < 1 or args.cpus_per_worker <= 0:
        raise InvalidInputError("--workers and --cpus-per-worker must be positive")

    def map_items(crop: Callable[[Any], dict], items: Sequence[Any]) -> Iterator[dict]:
        from serving.bulk.engine import (
            DEFAULT_TASK_RETRIES,
            ISOLATED_TASK_RETRIES,
            Apply,
            map_rows,
            ray_session,
        )
        from training.prepare import failed_record

        if not items:
            return
        kwargs = {"fn": pickle.dumps(crop)}
        cpus = math.ceil(args.workers * args.cpus_per_worker)
        done: set[str] = set()

        def run(todo: Sequence[Any], retries: int, in_flight: int) -> Iterator[dict]:
            rows = [{"arg": pickle.dumps(item)} for item in todo]
            for result in map_rows(
                rows,
                Apply,
                kwargs,
                workers=args.workers,
                cpus_per_worker=args.cpus_per_worker,
                task_retries=retries,
                keep_going=True,
                in_flight=in_flight,
            ):
                record = pickle.loads(result["result"])
                done.add(record["id"])
                yield record

        with ray_session(args.address, cpus=cpus, debug=args.debug):
            yield from run(items, DEFAULT_TASK_RETRIES, 2)
            # A video whose worker died on every try (a decoder crash, or out of memory) is tried
            # once more alone on a worker, so a death is its own; one that still kills it is failed.
            lost = [item for item in items if item.id not in done]
            if lost:
                yield from run(lost, ISOLATED_TASK_RETRIES, 1)
            for item in (item for item in lost if item.id not in done):
                yield failed_record(
                    item,
                    "the worker preparing it died on every try, the last ones with nothing else queued "
                    "(a crash in a native decoder, or out of memory)",
                )

    return map_items


def prepare_main(argv: Sequence[str] | None = None) -> int:
    """Run ``deepfake-bulk prepare``; return the exit code."""
    from deepfake_client.quiet import native_stderr_silenced
    from training.cli import prepare_main as run

    parser = prepare_parser()
    debug = "--debug" in (argv or ())
    with native_stderr_silenced(debug=debug):
        return run(list(argv) if argv is not None else None, parser=parser, map_items=ray_mapper)
