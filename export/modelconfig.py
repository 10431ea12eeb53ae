"""TF Serving's model config file (``models.config``), read and written (TensorFlow-free).

The text ``ModelServerConfig`` file is the source of truth for what is served. This module parses
it into the project's own copy of TF Serving's message (``deepfake_client._proto.tfs_pb2``, same
field names, so the text format is TF Serving's), turns it into small frozen dataclasses that the
rollout tooling edits, and renders it back. Writes are atomic (write, fsync, rename), because TF
Serving polls the file and must never read half of it.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping

from deepfake_client._proto import tfs_pb2
from deepfake_client.contract import MODEL_NAME, STABLE_LABEL
from deepfake_client.errors import InvalidInputError, NotFoundError
from export.files import atomic_write_text

POLICIES = ("latest", "all", "specific")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One ``config { ... }`` entry of a ``model_config_list``.

    Attributes:
        name: the model name clients ask for.
        base_path: the directory of numeric versions, as the *server* sees it (``/models/...`` in Docker).
        policy: ``latest`` (the newest ``num_versions``), ``all`` or ``specific`` (``versions``).
        versions: the versions served under the ``specific`` policy, ascending.
        num_versions: how many of the newest versions ``latest`` serves.
        labels: version labels such as ``stable`` and ``canary``.
        platform: the model platform; always ``tensorflow`` here.
    """

    name: str
    base_path: str
    policy: str = "latest"
    versions: tuple[int, ...] = ()
    num_versions: int = 1
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)
    platform: str = "tensorflow"

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidInputError(f"model {self.name!r}: unknown version policy {self.policy!r}")
        object.__setattr__(self, "versions", tuple(sorted(set(self.versions))))
        object.__setattr__(self, "labels", dict(sorted(self.labels.items())))

    def replace(self, **changes: object) -> ModelEntry:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """A whole ``ModelServerConfig`` with a ``model_config_list``."""

    models: tuple[ModelEntry, ...]

    def model(self, name: str = MODEL_NAME) -> ModelEntry:
        for entry in self.models:
            if entry.name == name:
                return entry
        raise NotFoundError(f"model {name!r} is not in the model config")

    def with_model(self, entry: ModelEntry) -> ServingConfig:
        """A copy with ``entry`` replacing the model of the same name (or added)."""
        others = tuple(m for m in self.models if m.name != entry.name)
        return ServingConfig(models=tuple(sorted(others + (entry,), key=lambda m: m.name)))

    def to_proto(self) -> tfs_pb2.ModelServerConfig:
        proto = tfs_pb2.ModelServerConfig()
        proto.model_config_list.SetInParent()
        for entry in self.models:
            config = proto.model_config_list.config.add(
                name=entry.name, base_path=entry.base_path, model_platform=entry.platform
            )
            policy = config.model_version_policy
            if entry.policy == "latest":
                policy.latest.num_versions = entry.num_versions
            elif entry.policy == "all":
                policy.all.SetInParent()
            else:
                policy.specific.versions.extend(entry.versions)
            for label, version in entry.labels.items():
                config.version_labels[label] = version
        return proto

    @classmethod
    def from_proto(cls, proto: tfs_pb2.ModelServerConfig) -> ServingConfig:
        entries = []
        for config in proto.model_config_list.config:
            choice = config.model_version_policy.WhichOneof("policy_choice") or "latest"
            entries.append(
                ModelEntry(
                    name=config.name,
                    base_path=config.base_path,
                    policy=choice,
                    versions=tuple(config.model_version_policy.specific.versions),
                    num_versions=config.model_version_policy.latest.num_versions or 1,
                    labels=dict(config.version_labels),
                    platform=config.model_platform or "tensorflow",
                )
            )
        return cls(models=tuple(entries))


def parse_config(text: str, source: str = "<config>") -> tfs_pb2.ModelServerConfig:
    """Parse the text form of a ``ModelServerConfig``.

    Raises:
        InvalidInputError: the text does not parse; the message names ``source`` and the position.
    """
    from google.protobuf import text_format

    proto = tfs_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as err:
        raise InvalidInputError(f"{source}: not a valid model config: {err}") from err
    for config in proto.model_config_list.config:
        if not config.name or not config.base_path:
            raise InvalidInputError(f"{source}: every model config needs a name and a base_path")
    return proto


def render_config(config: ServingConfig | tfs_pb2.ModelServerConfig) -> str:
    """The text form TF Serving reads (``--model_config_file``)."""
    from google.protobuf import text_format

    proto = config.to_proto() if isinstance(config, ServingConfig) else config
    return text_format.MessageToString(proto)


def read_config(path: str | pathlib.Path) -> tfs_pb2.ModelServerConfig:
    """Read and parse a model config file.

    Raises:
        NotFoundError: the file does not exist.
        InvalidInputError: it does not parse.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise NotFoundError(f"{path}: no such model config file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: cannot read the model config: {err}") from err
    return parse_config(text, source=str(path))


def load_config(path: str | pathlib.Path) -> ServingConfig:
    """Read a model config file into dataclasses."""
    return ServingConfig.from_proto(read_config(path))


def save_config(path: str | pathlib.Path, config: ServingConfig) -> None:
    """Write a model config file atomically (TF Serving polls it and must never see half of it)."""
    atomic_write_text(path, render_config(config))


def initial_config(base_path: str, version: int, model_name: str = MODEL_NAME) -> ServingConfig:
    """The config of a repository's first version: served alone and labelled ``stable``.

    The ``specific`` policy (never ``latest``) keeps publishing a version from serving it: only the
    rollout's ``canary`` step adds a version to what is served.
    """
    entry = ModelEntry(
        name=model_name,
        base_path=base_path,
        policy="specific",
        versions=(version,),
        labels={STABLE_LABEL: version},
    )
    return ServingConfig(models=(entry,))
