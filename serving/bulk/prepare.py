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
        from serving.bulk.engine import Apply, map_rows, ray_session

        if not items:
            return
        rows = [{"arg": pickle.dumps(item)} for item in items]
        kwargs = {"fn": pickle.dumps(crop)}
        cpus = math.ceil(args.workers * args.cpus_per_worker)
        with ray_session(args.address, cpus=cpus, debug=args.debug):
            for result in map_rows(
                rows, Apply, kwargs, workers=args.workers, cpus_per_worker=args.cpus_per_worker
            ):
                yield pickle.loads(result["result"])

    return map_items


def prepare_main(argv: Sequence[str] | None = None) -> int:
    """Run ``deepfake-bulk prepare``; return the exit code."""
    from deepfake_client.quiet import native_stderr_silenced
    from training.cli import prepare_main as run

    parser = prepare_parser()
    debug = "--debug" in (argv or ())
    with native_stderr_silenced(debug=debug):
        return run(list(argv) if argv is not None else None, parser=parser, map_items=ray_mapper)
