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
LR_SCHEDULES = ("constant", "cosine", "linear_decay")
OPTIMIZERS = ("adamw", "sgd")
AGGREGATIONS = ("confident", "mean", "max")
FREQUENCY_BRANCHES = ("dct", "fft")  # training.frequency
TEMPORAL_HEADS = ("gru", "lstm", "conv")  # training.temporal
TEMPORAL_MODES = ("frozen", "end_to_end")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved with the run and in the exported model.json)."""

    backbone: str = "efficientnet_b0"
    input_size: int | None = None  # None: the backbone's default size
    # "imagenet" (Keras applications; downloaded once into ~/.keras/models), a path to that Keras
    # file (offline), or null (random initialisation; the only choice for the small CNNs)
    weights: str | None = "imagenet"
    epochs: int = 20
    batch_size: int = 32  # the global batch, split across replicas (deepfake-train --distribute) ...
    learning_rate: float = 1e-3
    # ... unless true: batch_size per replica (global = batch_size x replicas) and learning_rate
    # scaled linearly with the replicas (Goyal et al. 2017; training.distribute)
    batch_per_replica: bool = False
    # constant | cosine (decays to 0 over the epochs) | linear_decay (constant, then linearly to 0
    # from lr_decay_start of the epochs on, per epoch: SBI's LinearDecayLR(100, 75))
    lr_schedule: str = "constant"
    lr_decay_start: float = 0.75
    optimizer: str = "adamw"  # adamw | sgd (with momentum)
    momentum: float = 0.9  # sgd only
    # sharpness-aware minimisation (Foret et al. 2021): rho of the ascent step; 0 = off. SBI: 0.05
    sam_rho: float = 0.0
    weight_decay: float = 1e-5
    dropout: float = 0.2
    # the frequency branch (training.frequency, F3-Net/SPSL-style): dct | fft | null (off): the
    # crop's log-magnitude spectrum through a small CNN, concatenated with the backbone's features
    frequency: str | None = None
    label_smoothing: float = 0.0
    balance: str = "class_weight"  # class_weight | sample | none (DFDC is ~82 % fake)
    early_stopping_patience: int = 5
    monitor: str = "auc"  # auc | loss: the validation metric that picks the best epoch and stops early
    seed: int = 0
    mixed_precision: str = "auto"  # auto: on when a GPU is present
    # keep decoded crops in memory (decode once) when they take at most cache_limit_mb; otherwise,
    # or with cache: false, they are streamed from disk every epoch (memory bounded by the prefetch)
    cache: bool = True
    cache_limit_mb: int = 2048
    # in-memory crops: shuffle buffer (null: the whole split, a full shuffle every epoch); streamed
    # crops are always shuffled in full (their file list is shuffled before reading)
    shuffle_buffer: int | None = None
    max_crops_per_video: int | None = None  # subsample each video's crops (train split only)
    # batch-norm moving statistics measured on all training crops before each validation
    # (training.batchnorm): for short runs whose moving averages never settle
    population_bn: bool = False
    population_bn_images: int = 2048  # measured on at most this many training crops, evenly spread
    # augmentation (train split only; with sbi, SBI's own transforms shared by each pair: training.sbi)
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
    # self-blended images (Shiohara & Yamasaki, CVPR 2022): fakes made from real crops (training.sbi)
    sbi: bool = False  # train on real crops + their self-blended copies; validate on self-blends only
    sbi_fake_weight: float = 0.0  # with sbi: keep real fakes too, sampled with this weight (0 drops them)
    # evaluation: how face scores make a video score. confident: the DFDC winner's rule over all
    # faces (deepfake_client.verdict.aggregate); mean: the mean over frames of each frame's highest
    # face score (SBI, DeepfakeBench); max: the highest face score
    aggregate: str = "confident"
    # how the threshold is chosen on validation: youden | f1 | eer | calibrated
    threshold_metric: str = "youden"
    # temporal model (training.temporal): after the frame model, a recurrent head over each face
    # track's crops, served beside the frame signatures as the ``sequence`` signature
    temporal: bool = False
    sequence_length: int = 16  # T; a track of 4..T-1 crops is padded and masked (its length is sent)
    temporal_head: str = "gru"  # gru | lstm | conv (a temporal convolution, masked mean over time)
    temporal_mode: str = "frozen"  # frozen: the trained frame model's features | end_to_end
    temporal_units: int = 32
    temporal_epochs: int = 20
    temporal_learning_rate: float = 3e-3

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
    from training.models import MODEL_NAMES, PRETRAINED

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
    if config.optimizer not in OPTIMIZERS:
        raise InvalidInputError(f"{source}: optimizer must be one of {', '.join(OPTIMIZERS)}")
    if not 0.0 <= config.lr_decay_start < 1.0 or config.sam_rho < 0 or config.cache_limit_mb < 0:
        raise InvalidInputError(f"{source}: need 0 <= lr_decay_start < 1, sam_rho >= 0, cache_limit_mb >= 0")
    if config.shuffle_buffer is not None and config.shuffle_buffer < 1:
        raise InvalidInputError(f"{source}: shuffle_buffer must be >= 1 or null (a full shuffle)")
    if config.monitor not in MONITORS:
        raise InvalidInputError(f"{source}: monitor must be one of {', '.join(MONITORS)}")
    if config.aggregate not in AGGREGATIONS:
        raise InvalidInputError(f"{source}: aggregate must be one of {', '.join(AGGREGATIONS)}")
    if config.frequency is not None and config.frequency not in FREQUENCY_BRANCHES:
        raise InvalidInputError(f"{source}: frequency must be one of {', '.join(FREQUENCY_BRANCHES)} or null")
    if config.weights and config.backbone not in PRETRAINED:
        raise InvalidInputError(
            f"{source}: model {config.backbone!r} has no pretrained weights (weights: "
            f"{config.weights!r}); set weights: null"
        )
    if (
        config.epochs < 1
        or config.batch_size < 1
        or (config.input_size is not None and config.input_size < 16)
    ):
        raise InvalidInputError(f"{source}: epochs and batch_size must be >= 1, input_size >= 16")
    if config.temporal_head not in TEMPORAL_HEADS or config.temporal_mode not in TEMPORAL_MODES:
        raise InvalidInputError(
            f"{source}: temporal_head must be one of {', '.join(TEMPORAL_HEADS)}, temporal_mode one of "
            f"{', '.join(TEMPORAL_MODES)}"
        )
    if config.sequence_length < 4 or config.temporal_units < 1 or config.temporal_epochs < 1:
        raise InvalidInputError(f"{source}: sequence_length must be >= 4, temporal_units and epochs >= 1")
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
    config = _validate(TrainConfig(**values), f"{path} with --set" if overrides else str(path))
    from training.models import check_weights

    check_weights(config.backbone, config.weights)  # a weights file must exist before a run starts
    return config


def config_from_dict(data: dict, source: str = "config") -> TrainConfig:
    """Rebuild a config saved with a run (``config.yaml`` or ``run.json["config"]``).

    A run saved before ``weights`` defaulted to ImageNet keeps the value it recorded.
    """
    values = {k: _check_value(k, v, source) for k, v in data.items()}
    return _validate(TrainConfig(**values), source)
