"""The local transport: a TFLite or ONNX export of the detector run in this process, no server.

``deepfake-export RUN --format tflite|onnx|tfjs --out DIR`` writes the model file and, beside it,
``model.json`` with the version's facts (input size, crop margin, threshold: what a server's
``model_info`` signature answers). :class:`LocalTransport` answers TF Serving's three calls from
them, so :class:`~deepfake_client.client.DetectorClient` runs its one pipeline unchanged
(``DetectorClient.local(DIR)``): the same sampling, detection, crops, tracks and verdicts, scored
in-process.

- ``.tflite``: LiteRT (``ai-edge-litert``, the ``edge`` extra: ``pip install deepfake-client[edge]``);
- ``.onnx``: ONNX Runtime (a dependency of the client already, it runs the face detector).

No TensorFlow either way. The one version is served under the label ``stable``; it has no
``encoded`` signature (crops go as uint8 pixels, which is what ``auto`` picks for it).
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from deepfake_client import contract
from deepfake_client.errors import DeepfakeError, InvalidInputError, NotFoundError
from deepfake_client.transport.base import (
    DEFAULT_TIMEOUT_S,
    UNKNOWN_LABEL_TEXT,
    Inputs,
    ModelMetadata,
    PredictResult,
    Signature,
    Target,
    TensorSpec,
    Transport,
)

FACTS_FILE = "model.json"  # beside the model file: the version's facts (export/formats)
MODEL_FILES = ("model.tflite", "model.onnx")
RUNTIMES = {".tflite": "litert", ".onnx": "onnxruntime"}


def find_model(path: str | pathlib.Path) -> pathlib.Path:
    """The model file of an edge export: ``path`` itself, or the one ``model.*`` file in the folder.

    Raises:
        NotFoundError: nothing there, or a folder without a model file.
        InvalidInputError: a file that is neither ``.tflite`` nor ``.onnx``.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        found = [path / name for name in MODEL_FILES if (path / name).is_file()]
        if not found:
            raise NotFoundError(f"{path}: no {' or '.join(MODEL_FILES)} in this folder (see deepfake-export)")
        return found[0]
    if not path.is_file():
        raise NotFoundError(f"{path}: no such model file or folder")
    if path.suffix not in RUNTIMES:
        raise InvalidInputError(f"{path}: not a .tflite or .onnx model file")
    return path


def read_facts(model_file: pathlib.Path) -> dict[str, Any]:
    """``model.json`` beside ``model_file``: input size, crop margin, threshold (and the rest)."""
    path = model_file.with_name(FACTS_FILE)
    try:
        facts = orjson.loads(path.read_bytes())
        size = int(facts["input_size"])
        float(facts["crop_margin"]), float(facts["threshold"])
    except FileNotFoundError as err:
        raise NotFoundError(f"{path}: missing (the export writes it beside the model file)") from err
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise InvalidInputError(f"{path}: not the facts file of an edge export ({err})") from err
    if size < 1:
        raise InvalidInputError(f"{path}: input_size must be positive, got {size}")
    return facts


class EdgeModel:
    """A model file (``.tflite`` or ``.onnx``) with the contract's input and outputs, ready to run.

    ``model(images)`` takes RGB uint8 ``[N, S, S, 3]`` and returns ``fake_probability`` and
    ``logit``, float32 ``[N]``. Safe to call from several threads.

    Args:
        path: the model file, or the folder of an edge export.
        threads: the runtime's intra-op threads (None: the runtime's default).
    """

    def __init__(self, path: str | pathlib.Path, *, threads: int | None = None):
        self.path = find_model(path)
        self.facts = read_facts(self.path)
        self.input_size = int(self.facts["input_size"])
        self.runtime = RUNTIMES[self.path.suffix]
        load = _load_tflite if self.runtime == "litert" else _load_onnx
        self._run = load(self.path, threads)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = np.asarray(images)
        size = self.input_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise InvalidInputError(
                f"images must be uint8 [N, {size}, {size}, 3], got {images.dtype} {list(images.shape)}"
            )
        if not len(images):
            empty = np.zeros(0, np.float32)
            return {contract.PROBABILITY_OUTPUT: empty, contract.LOGIT_OUTPUT: empty}
        try:
            out = self._run(np.ascontiguousarray(images))
        except DeepfakeError:
            raise
        except Exception as err:  # the runtimes raise their own types
            raise DeepfakeError(f"{self.path.name}: the {self.runtime} run failed: {err}") from err
        return {k: np.asarray(v, np.float32).reshape(-1) for k, v in out.items()}


def _load_tflite(path: pathlib.Path, threads: int | None) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise InvalidInputError(
            "running a .tflite model needs LiteRT: pip install 'deepfake-client[edge]' (ai-edge-litert)"
        ) from err
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        runner = interpreter.get_signature_runner(contract.DEFAULT_SIGNATURE)
    except (ValueError, RuntimeError) as err:
        raise InvalidInputError(f"{path}: LiteRT cannot load it ({err})") from err
    lock = threading.Lock()  # one interpreter runs one call at a time

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        with lock:
            out = runner(**{contract.IMAGES_INPUT: images})
            return {k: np.array(v) for k, v in out.items()}  # copies: the buffers are reused

    return run


def _load_onnx(path: pathlib.Path, threads: int | None) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception types
        raise InvalidInputError(f"{path}: ONNX Runtime cannot load it ({err})") from err
    names = [o.name for o in session.get_outputs()]

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {contract.IMAGES_INPUT: images}), strict=True))

    return run


class LocalTransport(Transport):
    """TF Serving's predict, metadata and status calls, answered by an :class:`EdgeModel` in-process.

    Args:
        path: the folder of an edge export (or its model file, with ``model.json`` beside it).
        threads: the runtime's intra-op threads.
    """

    def __init__(self, path: str | pathlib.Path, *, threads: int | None = None):
        self.model = EdgeModel(path, threads=threads)
        facts = self.model.facts
        self.model_name = str(facts.get("model_name") or contract.MODEL_NAME)
        self.version = int(facts.get("version") or 0)  # 0: an export not numbered by a repository
        # No server: "local" parses as a host name wherever a transport's URL is looked at.
        self.url = "local"

    def _check(self, target: Target) -> None:
        if target.model != self.model_name:
            raise NotFoundError(f"Servable not found for request: Latest({target.model})")
        if target.version is not None and target.version != self.version:
            raise NotFoundError(f"Servable not found for request: Specific({target.model}, {target.version})")
        if target.label is not None and target.label != contract.STABLE_LABEL:
            raise NotFoundError(
                f"{UNKNOWN_LABEL_TEXT}: {target.label} (a local model has one version, label stable)"
            )

    def metadata(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> ModelMetadata:
        self._check(target)
        size = self.model.input_size
        scores = {
            contract.PROBABILITY_OUTPUT: TensorSpec("DT_FLOAT", (-1,)),
            contract.LOGIT_OUTPUT: TensorSpec("DT_FLOAT", (-1,)),
        }
        info = {
            name: TensorSpec(dtype, (-1,))
            for name, dtype in (
                (contract.INFO_INPUT_SIZE, "DT_INT32"),
                (contract.INFO_CROP_MARGIN, "DT_FLOAT"),
                (contract.INFO_THRESHOLD, "DT_FLOAT"),
            )
        }
        signatures = {
            contract.DEFAULT_SIGNATURE: Signature(
                {contract.IMAGES_INPUT: TensorSpec("DT_UINT8", (-1, size, size, 3))}, scores
            ),
            contract.INFO_SIGNATURE: Signature({contract.INFO_INPUT: TensorSpec("DT_INT32", (-1,))}, info),
        }
        return ModelMetadata(self.model_name, self.version, signatures)

    def predict(
        self,
        target: Target,
        signature: str,
        inputs: Inputs,
        *,
        output_filter: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        wait_s: float = 0.0,
    ) -> PredictResult:
        self._check(target)
        if signature == contract.DEFAULT_SIGNATURE:
            if contract.IMAGES_INPUT not in inputs:
                raise InvalidInputError(f"missing input {contract.IMAGES_INPUT!r}")
            outputs = self.model(np.asarray(inputs[contract.IMAGES_INPUT]))
        elif signature == contract.INFO_SIGNATURE:
            n = len(np.asarray(inputs.get(contract.INFO_INPUT, [0])).reshape(-1))
            facts = self.model.facts
            outputs = {
                contract.INFO_INPUT_SIZE: np.full(n, self.model.input_size, np.int32),
                contract.INFO_CROP_MARGIN: np.full(n, float(facts["crop_margin"]), np.float32),
                contract.INFO_THRESHOLD: np.full(n, float(facts["threshold"]), np.float32),
            }
        else:
            raise InvalidInputError(
                f"a local model has no signature {signature!r} (crops go as uint8 pixels: encoding auto)"
            )
        if output_filter:
            outputs = {k: v for k, v in outputs.items() if k in output_filter}
        return PredictResult(outputs, self.version)

    def status(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> dict[int, str]:
        self._check(Target(target.model, version=target.version))
        return {self.version: "AVAILABLE"}
