"""The model repository as TF Serving sees it: the config file, version directories, policies.

TensorFlow-free. The config is TF Serving's text ``ModelServerConfig``; a version is a child of a
model's ``base_path`` whose name is an integer (anything else is ignored); the version policy
(``latest`` N, default 1; ``all``; ``specific``) picks which of them should be served.
"""

from __future__ import annotations

import os
import pathlib

from deepfake_client._proto import tfs_pb2
from serving.devserver.status import invalid_argument


def read_model_config(path: str | pathlib.Path) -> tfs_pb2.ModelServerConfig:
    """Parse a ``--model_config_file`` (the one place that reads it; ``export.modelconfig`` does the work).

    Raises:
        ServingError: INVALID_ARGUMENT with the parser's message when it cannot be read or parsed.
    """
    from deepfake_client.errors import DeepfakeError
    from export.modelconfig import read_config

    try:
        return read_config(path)
    except DeepfakeError as err:
        raise invalid_argument(str(err)) from err


def single_model_config(name: str, base_path: str) -> tfs_pb2.ModelServerConfig:
    """The config TF Serving builds from ``--model_name`` and ``--model_base_path``."""
    config = tfs_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def validate_config(config: tfs_pb2.ModelServerConfig) -> None:
    """ServerCore's ValidateModelConfigList checks, with its texts.

    Raises:
        ServingError: INVALID_ARGUMENT for a duplicate name or a relative base path.
    """
    names: set[str] = set()
    for model in config.model_config_list.config:
        if model.name in names:
            raise invalid_argument(f"Illegal to list model {model.name} multiple times in config list")
        names.add(model.name)
    for model in config.model_config_list.config:
        if "://" not in model.base_path and not os.path.isabs(model.base_path):
            raise invalid_argument(
                f"Expected model {model.name} to have an absolute path or URI; got base_path()="
                f"{model.base_path}"
            )
        if model.model_platform not in ("", "tensorflow"):
            raise invalid_argument(f"Model {model.name} requests unsupported platform {model.model_platform}")


def aspired_versions(model: tfs_pb2.ModelConfig, on_disk: dict[int, pathlib.Path]) -> dict[int, pathlib.Path]:
    """The versions the model's policy asks to serve, among those on disk."""
    policy = model.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return dict(on_disk)
    if choice == "specific":
        return {v: on_disk[v] for v in policy.specific.versions if v in on_disk}
    count = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions else 1
    newest = sorted(on_disk, reverse=True)[:count]
    return {v: on_disk[v] for v in newest}
