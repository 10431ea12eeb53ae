"""Classify, Regress and MultiInference: TF Serving's APIs on signatures that take serialized
``tf.Example``s.

The rules and texts follow ``tensorflow_serving/servables/tensorflow/``: ``classifier.cc``,
``regressor.cc``, ``multi_inference.cc`` and ``util.cc`` (the Input proto becomes one string
tensor of serialized examples; with a context, each example is the context's bytes followed by
the example's, which parses as the two merged). The messages are the official
``tensorflow_serving.apis`` classes (the project's TF-free subset has no Example); the model spec
is read the same way as for Predict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from serving.devserver.runtime import DEFAULT_SIGNATURE, Servable
from serving.devserver.status import ServingError, invalid_argument

if TYPE_CHECKING:
    from serving.devserver.service import PredictionService

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
INPUTS = "inputs"  # kClassifyInputs and kRegressInputs
CLASSES, SCORES = "classes", "scores"
OUTPUTS = "outputs"  # kRegressOutputs


def serialized_examples(input_proto: Any) -> np.ndarray:
    """InputToSerializedExampleTensor: the Input as a string vector of serialized Examples.

    Raises:
        ServingError: INVALID_ARGUMENT "Input is empty." when there is no example.
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        values = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        both = input_proto.example_list_with_context
        context = both.context.SerializeToString()
        values = [context + e.SerializeToString() for e in both.examples]
    else:
        values = []
    if not values:
        raise invalid_argument("Input is empty.")
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _debug_string(signature: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(signature)


def check_classification_signature(signature: Any, *, method_check: bool = False) -> tuple[str, ...]:
    """PreProcessClassification: the output aliases to fetch (``classes`` and/or ``scores``)."""
    if method_check and signature.method_name != CLASSIFY_METHOD:
        raise invalid_argument(
            f"Expected classification signature method_name to be {CLASSIFY_METHOD}. "
            f"Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if INPUTS not in signature.inputs:
        raise invalid_argument(f"No classification inputs found in SignatureDef: {_debug_string(signature)}")
    wanted = tuple(name for name in (CLASSES, SCORES) if name in signature.outputs)
    if not wanted:
        raise invalid_argument(
            f'Expected classification signature outputs to contain at least one of "{CLASSES}" or '
            f'"{SCORES}". Signature was: {_debug_string(signature)}'
        )
    return wanted


def check_regression_signature(signature: Any, *, method_check: bool = False) -> tuple[str, ...]:
    """PreProcessRegression: the output alias to fetch (``outputs``)."""
    if method_check and signature.method_name != REGRESS_METHOD:
        raise invalid_argument(
            f"Expected regression signature method_name to be {REGRESS_METHOD}. Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if INPUTS not in signature.inputs:
        raise invalid_argument(f"No regression inputs found in SignatureDef: {_debug_string(signature)}")
    if OUTPUTS not in signature.outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {_debug_string(signature)}")
    return (OUTPUTS,)


def _shape_text(array: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in array.shape) + "]"


def fill_classification_result(outputs: dict[str, np.ndarray], num_examples: int, result: Any) -> None:
    """PostProcessClassificationResult: validate the tensors and fill a ClassificationResult."""
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    for name, array, kind in ((CLASSES, classes, "DT_STRING"), (SCORES, scores, "DT_FLOAT")):
        if array is None:
            continue
        if array.ndim != 2:
            raise invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {_shape_text(array)}"
            )
        is_kind = array.dtype == object if name == CLASSES else array.dtype == np.float32
        if not is_kind:
            from deepfake_client.tensors import DTYPE_NAMES, dtype_enum

            raise invalid_argument(
                f"Expected {name} Tensor of {kind}. Got: {DTYPE_NAMES.get(dtype_enum(array.dtype))}"
            )
        if array.shape[0] != num_examples:
            raise invalid_argument(
                f"Expected {name} output batch size of {num_examples}. Got: {array.shape[0]}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    num_classes = (classes if classes is not None else scores).shape[1]
    for i in range(num_examples):
        classifications = result.classifications.add()
        for c in range(num_classes):
            item = classifications.classes.add()
            if classes is not None:
                label = classes[i, c]
                item.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                item.score = float(scores[i, c])


def fill_regression_result(outputs: dict[str, np.ndarray], num_examples: int, result: Any) -> None:
    """PostProcessRegressionResult: validate the tensor and fill a RegressionResult."""
    array = outputs[OUTPUTS]
    if not (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            f"{_shape_text(array)}"
        )
    if array.shape[0] != num_examples:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. {array.shape[0]}"
        )
    if array.dtype != np.float32:
        from deepfake_client.tensors import DTYPE_NAMES, dtype_enum

        raise invalid_argument(
            f"Expected output Tensor of DT_FLOAT.  Got: {DTYPE_NAMES.get(dtype_enum(array.dtype))}"
        )
    for value in array.reshape(-1):
        result.regressions.add().value = float(value)


def _signature(servable: Servable, spec: Any, missing: str) -> tuple[str, Any]:
    key = spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(key)
    if signature is None:
        raise invalid_argument(f"{missing}{key}")
    return key, signature


def _fill_spec(out: Any, name: str, signature_name: str, version: int) -> None:
    """MakeModelSpec: the name, the signature asked for ("" becomes serving_default), the version."""
    out.Clear()
    out.name = name
    out.signature_name = signature_name or DEFAULT_SIGNATURE
    out.version.value = version


class ExampleApis:
    """Classify, Regress and MultiInference over a :class:`PredictionService` (its versions,
    its run path with batching and timeouts, its metrics).

    Args:
        service: the service whose manager and run path are used.
        method_check: ``--enable_signature_method_name_check``: a signature must declare the
            method it is used for.
    """

    def __init__(self, service: PredictionService, *, method_check: bool = False) -> None:
        self.service = service
        self.method_check = method_check

    def classify(self, request: Any, *, timeout_s: float | None = None) -> Any:
        """TensorflowClassificationServiceImpl::Classify."""
        from tensorflow_serving.apis import classification_pb2

        return self._one(request, classification_pb2.ClassificationResponse(), "Classify", timeout_s)

    def regress(self, request: Any, *, timeout_s: float | None = None) -> Any:
        """TensorflowRegressionServiceImpl::Regress."""
        from tensorflow_serving.apis import regression_pb2

        return self._one(request, regression_pb2.RegressionResponse(), "Regress", timeout_s)

    def _one(self, request: Any, response: Any, api: str, timeout_s: float | None) -> Any:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        classify = api == "Classify"
        with self.service.hold(spec) as servable:
            key, signature = _signature(servable, spec, "No signature was found with the name: ")
            check = check_classification_signature if classify else check_regression_signature
            wanted = check(signature, method_check=self.method_check)
            _fill_spec(response.model_spec, spec.name, spec.signature_name, servable.version)
            examples = serialized_examples(request.input)
            outputs = self.service.run(
                servable, key, {INPUTS: examples}, wanted, api=api, model_name=spec.name, timeout_s=timeout_s
            )
        fill = fill_classification_result if classify else fill_regression_result
        fill(outputs, len(examples), response.result)
        return response

    def multi_inference(self, request: Any, *, timeout_s: float | None = None) -> Any:
        """RunMultiInferenceWithServerCore: one input, several classify/regress tasks of one model."""
        from tensorflow_serving.apis import inference_pb2

        tasks = list(request.tasks)
        spec = tasks[0].model_spec if tasks and tasks[0].HasField("model_spec") else None
        if spec is None:
            from deepfake_client._proto import tfs_pb2

            spec = tfs_pb2.ModelSpec()
        response = inference_pb2.MultiInferenceResponse()
        with self.service.hold(spec) as servable:
            plans = self._plan(servable, tasks)
            examples = serialized_examples(request.input)
            outputs: dict[str, dict[str, np.ndarray]] = {}
            for key, _, wanted in plans:
                outputs[key] = self.service.run(
                    servable, key, {INPUTS: examples}, wanted, api="", model_name="", timeout_s=timeout_s
                )
            self.service.metrics.record_examples(model_name=spec.name, count=len(examples))
            for (key, method, _), task in zip(plans, tasks, strict=True):
                result = response.results.add()
                if method == CLASSIFY_METHOD:
                    fill_classification_result(outputs[key], len(examples), result.classification_result)
                else:
                    fill_regression_result(outputs[key], len(examples), result.regression_result)
                _fill_spec(
                    result.model_spec, task.model_spec.name, task.model_spec.signature_name, servable.version
                )
        return response

    def _plan(self, servable: Servable, tasks: list[Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        """TensorFlowMultiInferenceRunner::Infer's checks: (signature, method, outputs) per task."""
        model_name = ""
        seen: set[str] = set()
        plans = []
        for task in tasks:
            if not task.model_spec.name:
                raise invalid_argument("Found ModelSpec with an empty model name.")
            if not model_name:
                model_name = task.model_spec.name
            elif model_name != task.model_spec.name:
                raise invalid_argument(
                    "All ModelSpecs in a MultiInferenceRequest must access the same model name."
                )
            key = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if key in seen:
                raise invalid_argument(f"Duplicate evaluation of signature: {key}")
            seen.add(key)
            signature = servable.signature_defs.get(key)
            if signature is None:
                raise invalid_argument(f"Requested signature not found in model graph: {key}")
            if task.method_name == CLASSIFY_METHOD:
                wanted = check_classification_signature(signature)
            elif task.method_name == REGRESS_METHOD:
                wanted = check_regression_signature(signature)
            else:
                raise ServingError("UNIMPLEMENTED", f"Unsupported signature method_name: {task.method_name}")
            plans.append((key, task.method_name, wanted))
        return plans
