"""Training configuration: YAML presets loaded into a frozen dataclass.

A preset is ``training/configs/<name>.yaml`` (or any YAML file path); it lists only what differs
from :class:`TrainConfig`'s defaults. Unknown keys and values of the wrong type are rejected with
the file and key named; ``--set key=value`` overrides are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import pathlib
import typing
from dataclasses import dataclass

from deepfake_client.errors import InvalidInputError

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"
BALANCE_MODES = ("class_weight", "sample", "none")
PRECISION_MODES = ("auto", "on", "off")
MONITORS = ("auc", "loss")
THRESHOLD_METRICS = ("youden", "f1", "eer", "calibrated")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved with the run and in the exported model.json)."""

    backbone: str = "efficientnet_b0"
    input_size: int | None = None  # None: the backbone's default size
    weights: str | None = None  # "imagenet" only when asked: nothing is downloaded otherwise
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (decays to 0 over the epochs)
    weight_decay: float = 1e-5
    dropout: float = 0.2
    label_smoothing: float = 0.0
    balance: str = "class_weight"  # class_weight | sample | none (DFDC is ~82 % fake)
    early_stopping_patience: int = 5
    monitor: str = "auc"  # auc | loss: the validation metric that picks the best epoch and stops early
    seed: int = 0
    mixed_precision: str = "auto"  # auto: on when a GPU is present
    cache: bool = True  # keep decoded crops in memory (decode once)
    shuffle_buffer: int = 4096
    max_crops_per_video: int | None = None  # subsample each video's crops (train split only)
    # batch-norm moving statistics measured on all training crops before each validation
    # (training.batchnorm): for short runs whose moving averages never settle
    population_bn: bool = False
    population_bn_images: int = 2048  # measured on at most this many training crops, evenly spread
    # augmentation (train split only)
    augment: bool = True
    flip: bool = True
    rotation_deg: float = 8.0
    crop_fraction: float = 0.08  # random crop of up to this fraction of the side, resized back
    brightness: float = 0.1
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.02
    blur_probability: float = 0.1
    jpeg_probability: float = 0.3
    jpeg_quality_min: int = 50
    noise_probability: float = 0.1
    noise_std: float = 4.0
    # self-blended images (Shiohara & Yamasaki, CVPR 2022): fakes made from real crops
    sbi: bool = False  # train on real crops + their self-blended copies (no fake video needed)
    sbi_fake_weight: float = 0.0  # with sbi: keep real fakes too, sampled with this weight (0 drops them)
    # evaluation
    aggregate: str = "confident"  # how face scores make a video score (deepfake_client.verdict.aggregate)
    # how the threshold is chosen on validation: youden | f1 | eer | calibrated
    threshold_metric: str = "youden"

    def resolved_input_size(self) -> int:
        from training.models import default_input_size

        return self.input_size or default_input_size(self.backbone)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "input_size": self.resolved_input_size()}


def _check_value(key: str, value: object, source: str) -> object:
    hints = typing.get_type_hints(TrainConfig)
    if key not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(TrainConfig))
        raise InvalidInputError(f"{source}: unknown config key {key!r} (known: {known})")
    allowed = typing.get_args(hints[key]) or (hints[key],)
    if isinstance(value, int) and not isinstance(value, bool) and float in allowed and int not in allowed:
        value = float(value)
    if value is None and type(None) in allowed:
        return value
    if not any(
        isinstance(value, t) and not (t is int and isinstance(value, bool))
        for t in allowed
        if t is not type(None)
    ):
        names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
        raise InvalidInputError(f"{source}: config key {key!r} must be {names}, got {value!r}")
    return value


def _validate(config: TrainConfig, source: str) -> TrainConfig:
    from training.models import MODEL_NAMES

    if config.backbone not in MODEL_NAMES:
        raise InvalidInputError(
            f"{source}: unknown model name {config.backbone!r} (known: {', '.join(MODEL_NAMES)})"
        )
    if config.balance not in BALANCE_MODES:
        raise InvalidInputError(f"{source}: balance must be one of {', '.join(BALANCE_MODES)}")
    if config.mixed_precision not in PRECISION_MODES:
        raise InvalidInputError(f"{source}: mixed_precision must be one of {', '.join(PRECISION_MODES)}")
    if config.threshold_metric not in THRESHOLD_METRICS:
        raise InvalidInputError(f"{source}: threshold_metric must be one of {', '.join(THRESHOLD_METRICS)}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise InvalidInputError(f"{source}: lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
    if config.monitor not in MONITORS:
        raise InvalidInputError(f"{source}: monitor must be one of {', '.join(MONITORS)}")
    if config.aggregate not in ("confident", "mean", "max"):
        raise InvalidInputError(f"{source}: aggregate must be confident, mean or max")
    if (
        config.epochs < 1
        or config.batch_size < 1
        or (config.input_size is not None and config.input_size < 16)
    ):
        raise InvalidInputError(f"{source}: epochs and batch_size must be >= 1, input_size >= 16")
    if config.population_bn_images < 1:
        raise InvalidInputError(f"{source}: population_bn_images must be >= 1")
    return config


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["epochs=3", "weights=null"]`` -> ``{"epochs": 3, "weights": None}`` (values are YAML)."""
    import yaml

    overrides = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--set {pair!r}: expected key=value")
        try:
            overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise InvalidInputError(f"--set {pair!r}: not a YAML value ({err})") from err
    return overrides


def preset_path(name: str) -> pathlib.Path:
    """The YAML file of a preset name (``smoke``) or a path to a YAML file."""
    path = pathlib.Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise InvalidInputError(f"{path}: no such config file")
        return path
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise InvalidInputError(f"unknown config preset {name!r} (known: {known})")
    return path


def load_config(name: str, overrides: dict[str, object] | list[str] | None = None) -> TrainConfig:
    """Load the preset or YAML file ``name`` and apply ``overrides`` (a dict or ``key=value`` strings)."""
    import yaml

    path = preset_path(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InvalidInputError(f"{path}: not a readable YAML file ({err})") from err
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: expected a mapping of config keys")
    values = {k: _check_value(str(k), v, str(path)) for k, v in data.items()}
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    values.update({k: _check_value(k, v, "--set") for k, v in (overrides or {}).items()})
    return _validate(TrainConfig(**values), f"{path} with --set" if overrides else str(path))


def config_from_dict(data: dict, source: str = "config") -> TrainConfig:
    """Rebuild a config saved with a run (``config.yaml`` or ``run.json["config"]``)."""
    values = {k: _check_value(k, v, source) for k, v in data.items()}
    return _validate(TrainConfig(**values), source)
