"""Adaptive sampling vs all 32 frames: the same verdicts with fewer faces sent?

The model is the demo's: the ``smoke`` preset trained on generated videos (24 per class, 10 frames;
trained once and cached under the system temp directory, like the clips). The videos are that
data's test split, twelve new 24-frame videos made like the demo's samples, and the bench clips
(``bench client_preprocess``: the realistic two-face clip, the 10 s clip and the five scene clips).
Each is scanned twice over gRPC, ``sampling="all"`` and ``sampling="adaptive"``; the figures are
how many labels agree and how many faces were sent, over every video and over the clear cases
(the 32-frame score at least 0.25 from the threshold).
"""

from __future__ import annotations

import os
import pathlib

from bench.bench_client_preprocess import CLIPS, SCENES, make_clip, make_realistic_clip, make_scene_clip

CLEAR_MARGIN = 0.25


def smoke_repository() -> pathlib.Path:
    """Train (once) the demo's smoke model and publish it; return the repository's models.config."""
    root = CLIPS / "smoke-model"
    config_path = root / "models" / "models.config"
    if config_path.exists():
        return config_path
    from serving.rollout import Rollout
    from training.config import load_config
    from training.prepare import prepare_dataset
    from training.synthetic import generate_dataset
    from training.train import train

    root.mkdir(parents=True, exist_ok=True)
    data = generate_dataset(root / "data", 24, frames=10, seed=0)
    config = load_config("smoke")
    prepare_dataset("folder", data, root / "crops", size=config.input_size, frames=10)
    run = train(config, root / "crops", root / "runs" / "r1", verbose=0)
    Rollout(repository=root / "models", log=lambda line: None).publish(run)
    return config_path


def _videos(root: pathlib.Path, quick: bool) -> dict[str, list[pathlib.Path]]:
    from training.synthetic import synthetic_frames, write_video

    samples = root / "samples"
    samples.mkdir(exist_ok=True)
    new = []
    for pair in range(2 if quick else 6):
        for label in ("real", "fake"):
            path = samples / f"sample_{pair + 1}_{label}.mp4"
            if not path.exists():
                write_video(path, synthetic_frames(label == "fake", 24, 240, 320, seed=10_007 + pair), fps=12)
            new.append(path)
    clips = [make_realistic_clip(), make_clip(10)]
    clips += [make_scene_clip(name) for name in (list(SCENES)[:1] if quick else SCENES)]
    return {
        "smoke test set": sorted((root / "data" / "test").rglob("*.mp4")),
        "new 24-frame samples": new,
        "bench clips": clips,
    }


def run(quick: bool) -> list[dict]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from deepfake_client import DetectorClient
    from serving.devserver.launcher import start_devserver, stop_devserver

    config_path = smoke_repository()
    groups = _videos(config_path.parent.parent, quick)
    server = start_devserver(config_path, config_path.parent.parent / "devserver.log")
    rows = []
    totals = {"agree": 0, "videos": 0, "sent": 0, "all": 0, "clear_sent": 0, "clear_all": 0}
    try:
        with (
            DetectorClient(server.grpc_url, sampling="all") as full,
            DetectorClient(server.grpc_url, sampling="adaptive") as adaptive,
        ):
            for group, videos in groups.items():
                agree = sent = scored = 0
                for path in videos:
                    prepared = full.prepare(path)  # the same faces for both: only the scoring differs
                    a, b = full.score(prepared), adaptive.score(prepared)
                    agree += a.label == b.label
                    sent += len(b.faces)
                    scored += len(a.faces)
                    if a.score is not None and abs(a.score - a.threshold) >= CLEAR_MARGIN:
                        totals["clear_sent"] += len(b.faces)
                        totals["clear_all"] += len(a.faces)
                rows.append(
                    {
                        "name": f"adaptive: labels equal to 32 frames, {group}",
                        "value": agree,
                        "unit": "videos",
                        "baseline": len(videos),
                        "baseline_name": "videos",
                        "goal": "all",
                    }
                )
                rows.append(
                    {
                        "name": f"adaptive: faces sent, {group}",
                        "value": sent,
                        "unit": "faces",
                        "baseline": scored,
                        "baseline_name": "all 32 frames",
                        "goal": "fewer",
                    }
                )
                totals["agree"] += agree
                totals["videos"] += len(videos)
    finally:
        stop_devserver(server)
    rows.append(
        {
            "name": f"adaptive: faces sent, clear cases (|score - threshold| >= {CLEAR_MARGIN})",
            "value": totals["clear_sent"],
            "unit": "faces",
            "baseline": totals["clear_all"],
            "baseline_name": "all 32 frames",
            "goal": "<= 0.5x",
        }
    )
    return rows
