"""``deepfake-demo``: the whole chain on generated data, on one machine, without Docker or a GPU.

generate data -> prepare crops (the client's crop) -> train the ``smoke`` preset -> export and
publish version 1 -> serve it with the dev server -> scan new sample videos with the client over
gRPC and REST -> print the verdicts. Everything lands in ``--out``; the verdicts also as JSON.
The model learns blending artefacts on generated faces: it shows the pipeline works, it is not a
detector of real deepfakes.

``--out`` is a folder the demo creates (it writes a marker file, ``MARKER``, into it) or an empty
one. A later run replaces only what the demo wrote there; a non-empty folder without the marker
(``--out .``, a home folder) is refused, and nothing in it is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import shutil
import sys
import time

import orjson

from deepfake_client.errors import DeepfakeError, InvalidInputError, report_error
from serving.devserver.launcher import start_devserver, stop_devserver

MARKER = ".deepfake-demo"
# What a run writes into --out: a later run replaces these, and only these.
OUTPUTS = ("data", "crops", "runs", "models", "samples", "devserver.log", "verdicts.json", "temporal.json")


def log(line: str) -> None:
    print(f"deepfake-demo: {line}", file=sys.stderr, flush=True)


def claim_output(out: pathlib.Path) -> None:
    """Make ``out`` the demo's folder: create it, or take an empty one, or clear a previous run's
    outputs (``OUTPUTS``) from a folder with the demo's marker. Anything else is refused.

    Raises:
        InvalidInputError: ``out`` is a file, or a non-empty folder the demo did not create.
    """
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: a file, not a folder")
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise InvalidInputError(
            f"--out {out}: a folder with files that deepfake-demo did not create; nothing was touched "
            "(give a new or empty folder)"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    (out / MARKER).write_text("made by deepfake-demo: a later run replaces " + ", ".join(OUTPUTS) + "\n")


def run_demo(
    out: pathlib.Path, *, videos_per_class: int = 96, frames: int = 3, sample_pairs: int = 3, seed: int = 0
) -> dict:
    """Run the chain into ``out`` (see ``claim_output``); return the summary also written as JSON."""
    claim_output(out)  # first: a refusal costs no time
    from deepfake_client import DetectorClient
    from deepfake_client.verdict import format_table
    from serving.rollout import Rollout
    from training.config import load_config
    from training.prepare import prepare_dataset
    from training.synthetic import generate_dataset, synthetic_frames, write_video
    from training.train import train

    timings: dict[str, float] = {}

    def stage(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 2)
        log(f"{name} done in {timings[name]:.1f} s")

    start = time.perf_counter()
    log(f"1/6 generating {2 * videos_per_class} short H.264 videos of real and blended faces")
    data = generate_dataset(out / "data", videos_per_class, frames=frames, seed=seed)
    stage("generate", start)

    start = time.perf_counter()
    config = load_config("smoke")
    log(f"2/6 preparing {config.input_size}x{config.input_size} face crops with the client's crop")
    prepare_dataset("folder", data, out / "crops", size=config.input_size, frames=frames, progress=True)
    stage("prepare", start)

    start = time.perf_counter()
    log("3/6 training the smoke preset")
    run = train(config, out / "crops", out / "runs" / "r1", verbose=0)
    run_info = orjson.loads((run / "run.json").read_bytes())
    stage("train", start)

    start = time.perf_counter()
    log("4/6 exporting and publishing version 1")
    repository = out / "models"
    version = Rollout(repository=repository, log=log).publish(run)
    stage("export", start)

    # New scenes the model never saw, made like the training data: real videos and their fakes.
    samples = out / "samples"
    samples.mkdir()
    videos = {}
    for pair in range(sample_pairs):
        for label in ("real", "fake"):
            path = samples / f"sample_{pair + 1}_{label}.mp4"
            frames_rgb = synthetic_frames(label == "fake", 24, 240, 320, seed=seed + 10_007 + pair)
            write_video(path, frames_rgb, fps=12)
            videos[path] = label.upper()

    start = time.perf_counter()
    log("5/6 serving the repository with the dev server (TF-Serving-compatible gRPC and REST)")
    verdicts, by_server = [], {}
    server = start_devserver(repository / "models.config", out / "devserver.log")
    try:
        stage("serve", start)
        start = time.perf_counter()
        log(f"6/6 scanning {len(videos)} new sample videos over gRPC and REST")
        for url in (server.grpc_url, server.rest_url):
            with DetectorClient(url, label="stable") as client:
                by_server[url] = [client.scan_video(path) for path in videos]
            verdicts += [
                {"truth": truth, "server": url, **v.to_dict(faces=False)}
                for truth, v in zip(videos.values(), by_server[url], strict=True)
            ]
        stage("scan", start)
    finally:
        stop_devserver(server)
    grpc_verdicts, rest_verdicts = by_server[server.grpc_url], by_server[server.rest_url]
    print(format_table(grpc_verdicts))
    correct = sum(v.label == truth for v, truth in zip(grpc_verdicts, videos.values(), strict=True))
    agree = max(
        abs((a.score or 0.0) - (b.score or 0.0)) for a, b in zip(grpc_verdicts, rest_verdicts, strict=True)
    )
    print(
        f"{correct}/{len(videos)} sample videos labelled correctly (the truth is in each file name); "
        f"REST and gRPC scores differ by at most {agree:.1e}"
    )
    print(
        "The demo model is a tiny CNN trained in a minute on generated videos of one real face, its fakes "
        "carrying blending artefacts: it shows that the chain works end to end; it is not a detector of "
        "real deepfakes (for that, train a real backbone on DFDC, FaceForensics++ or Celeb-DF)."
    )
    summary = {
        "version": version,
        "validation": run_info.get("metrics", {}),
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "correct": correct,
        "samples": len(videos),
        "verdicts": verdicts,
    }
    (out / "verdicts.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepfake-demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        default="demo-output",
        help="working folder: created, or empty, or one a previous run made (its outputs are replaced); "
        "any other folder is refused",
    )
    # 96 short scenes of 3 frames rather than 24 of 10: as many crops (as much training time), but
    # 4x as many different faces, blends and backgrounds; all 6 samples right on seeds 0-4
    parser.add_argument("--videos-per-class", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--temporal",
        action="store_true",
        help="the temporal model instead (serving.demo_temporal): the temporal_smoke preset on generated "
        "videos with blend and flicker fakes; writes OUT/temporal.json with both video AUCs",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and TensorFlow's and native libraries' own logs"
    )
    args = parser.parse_args(argv)
    from training.quiet import quiet_tensorflow

    try:
        # With --json, stdout carries the JSON summary only: the verdict table goes to stderr.
        with (
            quiet_tensorflow(debug=args.debug),
            contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout),
        ):
            if args.temporal:
                from serving.demo_temporal import run_temporal_demo

                summary = run_temporal_demo(pathlib.Path(args.out), seed=args.seed)
            else:
                summary = run_demo(
                    pathlib.Path(args.out), videos_per_class=args.videos_per_class, seed=args.seed
                )
    except DeepfakeError as err:
        return report_error("deepfake-demo", err, debug=args.debug)
    if args.json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    written = "temporal.json" if args.temporal else "verdicts.json"
    log(f"finished in {summary['total_s']:.0f} s; results in {pathlib.Path(args.out) / written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
