"""``deepfake-demo --temporal``: the chain with the temporal model, on generated data, on one machine.

generate videos (real faces; fakes with a blending artefact, and fakes that only flicker over time)
-> prepare crops (16 frames a video) -> train the ``temporal_smoke`` preset (the frame model, then a
GRU over each face track) -> frame-only vs temporal video AUC on the held-out test videos -> export
one version with both the frame and the ``sequence`` signatures -> serve it with the dev server ->
scan two new sample videos (a real one and its flickering fake) over gRPC, with ``temporal_score``
per person. Writes ``OUT/temporal.json``; ``--out`` rules as ``deepfake-demo`` (``serving.demo``).
"""

from __future__ import annotations

import pathlib
import time

import orjson

from serving.demo import claim_output, log

FLICKER, BLEND = "flk_", "vid_"


def _auc(table: dict, score: str, prefix: str = "") -> float | None:
    from sklearn.metrics import roc_auc_score

    keep = [i for i, v in enumerate(table["videos"]) if pathlib.PurePath(v).name.startswith(prefix)]
    labels = table["labels"][keep]
    if len(set(labels.tolist())) < 2:
        return None
    return round(float(roc_auc_score(labels, table[score][keep])), 4)


def run_temporal_demo(
    out: pathlib.Path, *, videos_per_class: int = 24, frames: int = 16, seed: int = 0
) -> dict:
    """Run the temporal chain into ``out``; return the summary also written to ``temporal.json``."""
    claim_output(out)  # first: a refusal costs no time
    from deepfake_client import DetectorClient
    from deepfake_client.verdict import format_table
    from serving.devserver.launcher import start_devserver, stop_devserver
    from serving.rollout import Rollout
    from training.config import load_config
    from training.prepare import prepare_dataset
    from training.synthetic import flicker_frames, generate_dataset, write_video
    from training.temporal_eval import split_table
    from training.temporal_train import train_temporal

    timings: dict[str, float] = {}

    def stage(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 2)
        log(f"{name} done in {timings[name]:.1f} s")

    start = time.perf_counter()
    log(
        f"1/6 generating {4 * videos_per_class} videos of {frames} frames: blend fakes and flicker-only fakes"
    )
    data = generate_dataset(
        out / "data",
        videos_per_class,
        frames=frames,
        fakes=("blend", "flicker"),
        test_fraction=0.3,
        seed=seed,
    )
    stage("generate", start)

    start = time.perf_counter()
    config = load_config("temporal_smoke", {"seed": seed})
    log(f"2/6 preparing {config.input_size}x{config.input_size} face crops with the client's crop")
    prepare_dataset("folder", data, out / "crops", size=config.input_size, frames=frames, progress=True)
    stage("prepare", start)

    start = time.perf_counter()
    log("3/6 training the temporal_smoke preset: the frame model, then a GRU over each face track")
    run = train_temporal(config, out / "crops", out / "runs" / "t1", verbose=0)
    stage("train", start)

    table = split_table(run, out / "crops", "test")
    aucs = {
        "frame_video_auc": _auc(table, "frame"),
        "temporal_video_auc": _auc(table, "temporal"),
        "combined_video_auc": _auc(table, "combined"),
        "flicker": {
            "frame_video_auc": _auc(table, "frame", FLICKER),
            "temporal_video_auc": _auc(table, "temporal", FLICKER),
        },
        "blend": {
            "frame_video_auc": _auc(table, "frame", BLEND),
            "combined_video_auc": _auc(table, "combined", BLEND),
        },
    }

    start = time.perf_counter()
    log("4/6 exporting and publishing version 1 (frame and sequence signatures)")
    repository = out / "models"
    version = Rollout(repository=repository, log=log).publish(run)
    stage("export", start)

    samples = out / "samples"
    samples.mkdir()
    videos = {}
    for label in ("real", "fake"):
        path = samples / f"flicker_{label}.mp4"
        write_video(path, flicker_frames(label == "fake", 24, 240, 320, seed=seed + 20_011), fps=12)
        videos[path] = label.upper()

    start = time.perf_counter()
    log("5/6 serving the repository with the dev server")
    server = start_devserver(repository / "models.config", out / "devserver.log")
    try:
        stage("serve", start)
        start = time.perf_counter()
        log("6/6 scanning a new real video and its flickering fake over gRPC")
        with DetectorClient(server.grpc_url, label="stable", frames=24) as client:
            verdicts = [client.scan_video(path) for path in videos]
        stage("scan", start)
    finally:
        stop_devserver(server)
    print(format_table(verdicts))
    print(
        f"held-out test videos: {len(table['videos'])}; video AUC frame-only {aucs['frame_video_auc']}, "
        f"temporal {aucs['temporal_video_auc']}, combined {aucs['combined_video_auc']}"
    )
    print(
        f"  flicker-only fakes: frame-only {aucs['flicker']['frame_video_auc']}, temporal "
        f"{aucs['flicker']['temporal_video_auc']} (single frames of these fakes are real frames)"
    )
    summary = {
        **aucs,
        "test_videos": len(table["videos"]),
        "version": version,
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "samples": [
            {"truth": truth, **v.to_dict(faces=False)}
            for truth, v in zip(videos.values(), verdicts, strict=True)
        ],
    }
    (out / "temporal.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary
