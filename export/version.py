"""A trained run -> a complete version directory -> the next version in a model repository.

``export_run`` is the whole job of ``deepfake-export``: read the run (``model.keras`` and
``run.json``), build the SavedModel with its signatures, warm-up records, model.json and golden
batch in a staging directory, validate it, and publish it atomically.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import orjson

from deepfake_client import contract
from deepfake_client.errors import InvalidInputError, NotFoundError
from export.publish import publish_version


@dataclasses.dataclass
class ExportResult:
    """The published version and what validation measured."""

    version: int
    path: str
    input_size: int
    crop_margin: float
    threshold: float
    validation: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_run(run_dir: str | pathlib.Path) -> tuple[Any, dict[str, Any]]:
    """Load a run's Keras model and ``run.json`` (training's own readers of a run).

    Raises:
        NotFoundError: the run folder, its model or its run.json is missing.
        InvalidInputError: run.json is unreadable or the model does not load.
    """
    from training.evaluate import load_run_model, read_run_info

    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise NotFoundError(f"{run_dir}: no such run folder")
    model = load_run_model(run_dir)  # first: a missing model.keras says training did not finish
    return model, read_run_info(run_dir)


def model_input_size(model: Any) -> int:
    """``S`` of a model whose input is ``[batch, S, S, 3]``; ``InvalidInputError`` otherwise."""
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise InvalidInputError(f"the model's input shape {list(shape)} is not [batch, S, S, 3]")
    return int(shape[1])


def build_version(
    staging: pathlib.Path,
    model: Any,
    *,
    crop_margin: float,
    threshold: float,
    backbone: str,
    dataset: dict | None = None,
    metrics: dict | None = None,
    config: dict | None = None,
    version: int | None = None,
    model_name: str = contract.MODEL_NAME,
    sequence_model: Any = None,
    temporal: dict | None = None,
) -> dict[str, Any]:
    """Write a complete, validated version of ``model_name`` into the empty directory ``staging``.

    ``sequence_model`` (a run's ``temporal.keras``) and ``temporal`` (its ``run.json`` section) add
    the ``sequence`` signature, its warm-up records and golden sequences.
    """

    from export.metadata import GOLDEN_FILE, golden_images, golden_sequences, model_metadata, save_golden
    from export.signatures import build_serving_module, save_serving_model
    from export.validate import validate_version
    from export.warmup import warmup_requests, write_warmup

    size = model_input_size(model)
    length = int(sequence_model.inputs[0].shape[1]) if sequence_model is not None else 0
    sequence_threshold = (temporal or {}).get("thresholds", {}).get("combined")
    module = build_serving_module(
        model,
        size,
        crop_margin,
        threshold,
        sequence_model=sequence_model,
        sequence_threshold=sequence_threshold,
    )
    save_serving_model(module, staging)
    write_warmup(staging / contract.WARMUP_FILE, warmup_requests(size, model_name, sequence_length=length))
    golden = golden_images(size)
    sequences = golden_sequences(golden_images(size, count=length), length) if length else None
    report = validate_version(
        staging,
        model,
        golden,
        size,
        crop_margin,
        threshold,
        sequence_model=sequence_model,
        golden_sequences=sequences,
    )
    # The golden batch's expected scores are the saved model's own: what a server must answer.
    scores = report.golden_scores
    golden_seq = None
    if sequences is not None:
        golden_seq = {
            "sequence_frames": sequences[0],
            "sequence_lengths": sequences[1],
            "sequence_probability": scores["sequence_probability"],
            "sequence_logit": scores["sequence_logit"],
        }
    save_golden(
        staging / GOLDEN_FILE,
        golden,
        scores[contract.PROBABILITY_OUTPUT],
        scores[contract.LOGIT_OUTPUT],
        golden_seq,
    )
    meta = model_metadata(
        backbone=backbone,
        input_size=size,
        crop_margin=crop_margin,
        threshold=threshold,
        dataset=dataset,
        metrics=metrics,
        config=config,
        version=version,
        model_name=model_name,
        temporal=_public_temporal(temporal) if sequence_model is not None else None,
    )
    meta["validation"] = report.as_dict()
    (staging / contract.METADATA_FILE).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    return meta


def _public_temporal(temporal: dict | None) -> dict:
    """What model.json says about the temporal model: T, head, mode, rule, thresholds, metrics."""
    keys = ("sequence_length", "head", "mode", "rule", "thresholds", "metrics")
    return {k: v for k, v in (temporal or {}).items() if k in keys}


def read_temporal(run_dir: str | pathlib.Path, info: dict[str, Any]) -> Any:
    """The run's temporal model (``temporal.keras``) if ``run.json`` has a temporal section, else None."""
    if not info.get("temporal"):
        return None
    from training.evaluate import load_keras_model

    path = pathlib.Path(run_dir) / info["temporal"].get("model", "temporal.keras")
    if not path.is_file():
        raise NotFoundError(f"{path}: run.json has a temporal section but the temporal model is missing")
    return load_keras_model(path, "the temporal model")


def export_model(
    model: Any,
    repository: str | pathlib.Path,
    *,
    crop_margin: float = contract.DEFAULT_CROP_MARGIN,
    threshold: float = contract.DEFAULT_THRESHOLD,
    backbone: str = "unknown",
    dataset: dict | None = None,
    metrics: dict | None = None,
    config: dict | None = None,
    version: int | None = None,
    model_name: str = contract.MODEL_NAME,
    publish_options: dict[str, Any] | None = None,
    sequence_model: Any = None,
    temporal: dict | None = None,
) -> ExportResult:
    """Export a Keras model as the next (or the given) version of ``model_name`` in ``repository``.

    ``publish_options`` go to :func:`export.publish.publish_version` (config path, the server's base
    path, directory mode, log).
    """
    model_input_size(model)  # refuse a wrong model before touching the repository
    built: dict[str, Any] = {}

    def build(staging: pathlib.Path, number: int) -> None:
        built.update(
            build_version(
                staging,
                model,
                crop_margin=crop_margin,
                threshold=threshold,
                backbone=backbone,
                dataset=dataset,
                metrics=metrics,
                config=config,
                version=number,
                model_name=model_name,
                sequence_model=sequence_model,
                temporal=temporal,
            )
        )

    path = publish_version(
        repository, build, version=version, model_name=model_name, **(publish_options or {})
    )
    return ExportResult(
        version=int(path.name),
        path=str(path),
        input_size=built["input_size"],
        crop_margin=built["crop_margin"],
        threshold=built["threshold"],
        validation=built["validation"],
    )


def export_run(
    run_dir: str | pathlib.Path,
    repository: str | pathlib.Path,
    *,
    version: int | None = None,
    model_name: str = contract.MODEL_NAME,
    publish_options: dict[str, Any] | None = None,
) -> ExportResult:
    """Export a training run (``model.keras`` + ``run.json``) as the next version in ``repository``."""
    model, info = read_run(run_dir)
    return export_model(
        model,
        repository,
        crop_margin=float(info.get("crop_margin", contract.DEFAULT_CROP_MARGIN)),
        threshold=float(info.get("threshold", contract.DEFAULT_THRESHOLD)),
        backbone=str(info.get("backbone", "unknown")),
        dataset=info.get("dataset"),
        metrics=info.get("metrics"),
        config=info.get("config"),
        version=version,
        model_name=model_name,
        publish_options=publish_options,
        sequence_model=read_temporal(run_dir, info),
        temporal=info.get("temporal"),
    )
