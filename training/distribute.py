"""Training on many devices and machines: ``deepfake-train --distribute {none,mirrored,multi_worker}``.

- ``none``: TensorFlow's default strategy (one device).
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every GPU of this host (or the logical CPU
  devices made by :func:`split_cpu`, to try the path without a GPU).
- ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` across hosts, each process given
  its place by the ``TF_CONFIG`` environment variable (``{"cluster": {"worker": [...]}, "task":
  {"type": "worker", "index": i}}``); collectives over gRPC (ring all-reduce on CPU, NCCL on GPUs).

Batch and learning rate: by default ``batch_size`` is the *global* batch (split across the
replicas) and ``learning_rate`` is used as written, so a distributed run computes what one device
would. With ``batch_per_replica: true`` every replica takes ``batch_size`` (global batch =
``batch_size * replicas``) and the learning rate grows in proportion (the linear scaling rule of
Goyal et al., 2017): :func:`scaled`.

Only the chief (``chief`` 0, or ``worker`` 0 without a chief) writes the run folder; the other
workers write their checkpoints into a temporary folder that is removed at the end, as
TensorFlow's multi-worker guide prescribes (every worker saves, since saving may need the others).
"""

from __future__ import annotations

import json
import os
import types
from dataclasses import dataclass

from deepfake_client.errors import InvalidInputError

STRATEGIES = ("none", "mirrored", "multi_worker")
_ROLES = ("chief", "worker")


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker cluster, read from ``TF_CONFIG``."""

    task_type: str
    task_index: int
    workers: int  # chief included
    has_chief: bool = False

    @property
    def chief(self) -> bool:
        """Whether this process writes the run folder: the chief, or worker 0 without one."""
        return self.task_type == "chief" or (not self.has_chief and self.task_index == 0)


@dataclass(frozen=True)
class Placement:
    """What a run records about its strategy: ``run.json["training"]["distribute"]``."""

    strategy: str
    replicas: int
    workers: int
    chief: bool
    global_batch: int
    learning_rate: float

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "chief"}


def parse_tf_config(text: str | None) -> Cluster:
    """Check ``TF_CONFIG`` (the JSON text) and return this task's place; one-line errors.

    Raises:
        InvalidInputError: missing, not JSON, no worker list, an unknown task type, an index
            outside the list, or an address that is not ``host:port``.
    """
    if not text or not text.strip():
        raise InvalidInputError(
            "--distribute multi_worker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"TF_CONFIG is not JSON ({err.msg} at character {err.pos})") from err
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise InvalidInputError('TF_CONFIG needs a "cluster" mapping of task types to host:port lists')
    cluster, task = config["cluster"], config.get("task")
    unknown = sorted(set(cluster) - {*_ROLES, "evaluator", "ps"})
    if unknown or "ps" in cluster:
        raise InvalidInputError(
            f"TF_CONFIG cluster: task types {', '.join(unknown or ['ps'])} are not for "
            "MultiWorkerMirroredStrategy (use chief and worker)"
        )
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise InvalidInputError(f'TF_CONFIG cluster "{role}" must be a non-empty list of host:port')
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidInputError(f'TF_CONFIG cluster "{role}": {address!r} is not host:port')
    if len(cluster.get("chief", [])) > 1:
        raise InvalidInputError("TF_CONFIG cluster: at most one chief")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise InvalidInputError(
            f'TF_CONFIG "task" must name a type of the cluster ({", ".join(cluster)}) and an index'
        )
    index = task.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise InvalidInputError(
            f"TF_CONFIG task index {index!r} is not in 0..{len(cluster[task['type']]) - 1} "
            f'for "{task["type"]}"'
        )
    if task["type"] == "evaluator":
        raise InvalidInputError("TF_CONFIG task evaluator: deepfake-train runs chief and worker tasks only")
    return Cluster(task["type"], index, sum(len(cluster.get(r, [])) for r in _ROLES), "chief" in cluster)


def split_cpu(devices: int) -> None:
    """Split the CPU into ``devices`` logical devices (before TensorFlow starts its runtime).

    Lets ``mirrored`` run several replicas on a machine without GPUs (tests, trying a config).

    Raises:
        InvalidInputError: ``devices`` < 1, or TensorFlow's devices are already initialised.
    """
    import tensorflow as tf

    if devices < 1:
        raise InvalidInputError(f"--cpu-devices must be >= 1, got {devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
        )
    except RuntimeError as err:
        raise InvalidInputError(
            "--cpu-devices must be set before TensorFlow starts (run it in a new process)"
        ) from err


def make_strategy(kind: str, *, tf_config: str | None = None):
    """The ``tf.distribute`` strategy ``kind`` (``none``, ``mirrored``, ``multi_worker``) and its cluster.

    ``tf_config`` defaults to the ``TF_CONFIG`` environment variable (``multi_worker`` only).
    Returns ``(strategy, cluster)``; ``cluster`` is None outside ``multi_worker``.

    Raises:
        InvalidInputError: an unknown ``kind`` or a bad ``TF_CONFIG``.
    """
    if kind not in STRATEGIES:
        raise InvalidInputError(f"--distribute {kind!r}: expected one of {', '.join(STRATEGIES)}")
    if kind == "multi_worker":
        cluster = parse_tf_config(os.environ.get("TF_CONFIG") if tf_config is None else tf_config)
    import tensorflow as tf

    if kind == "none":
        return tf.distribute.get_strategy(), None
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        # several CPU devices (split_cpu) do not sum with NCCL: cross-device ops on the host
        ops = None if gpus else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=ops), None
    if tf_config is not None:
        os.environ["TF_CONFIG"] = tf_config  # the strategy's cluster resolver reads the environment
    return tf.distribute.MultiWorkerMirroredStrategy(), cluster


def scaled(batch_size: int, learning_rate: float, replicas: int, per_replica: bool) -> tuple[int, float]:
    """``(global batch, learning rate)``: unchanged, or both times ``replicas`` when ``per_replica``."""
    if not per_replica:
        return batch_size, learning_rate
    return batch_size * replicas, learning_rate * replicas


def distributed_input(ds, replicas: int, batch: int, *, count: int | None, training: bool):
    """The batched ``ds`` of ``count`` images (None: repeated, every batch full) ready for ``replicas``.

    Auto-sharding by element (DATA): in-memory and generated datasets have no files to split.
    A last batch smaller than ``replicas`` would leave a replica with no image, on which Keras'
    batch normalisation fails ("Incompatible shapes: [16] vs. [0,64,64,3]"). In training that
    batch is skipped (at most ``replicas - 1`` crops an epoch, other ones each epoch: the shuffle
    changes); validation is batched a little smaller instead (the largest size up to ``batch``
    that leaves no such batch), so every image counts: its metrics do not depend on the batch.

    Raises:
        InvalidInputError: no batch size of ``replicas`` to ``batch`` divides ``count`` images so.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    short = 0 if count is None else count % batch
    if replicas > 1 and 0 < short < replicas:
        if training:
            ds = ds.take(count // batch)
        else:
            fits = [b for b in range(batch - 1, replicas - 1, -1) if not 0 < count % b < replicas]
            if not fits:
                raise InvalidInputError(
                    f"{count} validation images cannot be batched over {replicas} replicas"
                )
            batches = -(-count // fits[0])
            ds = ds.unbatch().batch(fits[0]).apply(tf.data.experimental.assert_cardinality(batches))
    return ds.with_options(options)


def _build_from_local_batch(self, iterator=None, data_batch=None):
    """Keras' ``_maybe_symbolic_build`` with the first batch taken from this worker's own replica."""
    import tensorflow as tf
    from keras.src import tree

    if iterator is not None:
        for _, _, it in iterator:
            data_batch = tree.map_structure(
                lambda v: (
                    self.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v
                ),
                next(it),
            )
            break
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _reduce_scalars_across_workers() -> None:
    """Keras 3.15 averages each step's metrics across workers with ``strategy.reduce("MEAN", v,
    axis=0)``, which fails on the scalars metrics are ("Invalid reduction dimension 0 for input with
    0 dimensions"): scalars are averaged over the replicas (``axis=None``), the rest as Keras does.
    Installed once, in a process that trains across workers; Keras' own function does the rest."""
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "scalars_across_workers", False):
        return

    def rank(v) -> int | None:
        local = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
        return getattr(local, "shape", tf.TensorShape(None)).rank

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(
                lambda v: (
                    strategy.reduce("MEAN", v, axis=None)
                    if rank(v) == 0
                    else original(v, strategy, reduction)
                ),
                values,
            )
        return original(values, strategy, reduction)

    reduce_per_replica.scalars_across_workers = True
    trainer.reduce_per_replica = reduce_per_replica


def fit_across_workers(model, strategy: str):
    """``model`` able to ``fit`` under ``strategy`` (the saved model is unchanged).

    Two fixes of Keras 3.15. Keras builds a model made in a strategy's scope from its first batch,
    which it first averages over the replicas with ``strategy.reduce``: MultiWorkerMirroredStrategy
    takes one tensor, not the ``(x, y, weight)`` tuple ("Attempt to convert a value (PerReplica
    ...)"), and MirroredStrategy fails when the replicas' shares differ in size (a global batch
    that the replicas do not divide, or a last batch: "Inputs to operation AddN ... must have the
    same size and shape"). The build only needs the batch's shapes and types: this replica's own
    share gives them, with no collective (on this instance). And, across workers only, each
    step's scalar metrics: :func:`_reduce_scalars_across_workers`.
    """
    if strategy != "none":
        model._maybe_symbolic_build = types.MethodType(_build_from_local_batch, model)
    if strategy == "multi_worker":
        _reduce_scalars_across_workers()
    return model
