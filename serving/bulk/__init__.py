"""Bulk jobs on Ray Data: ``deepfake-bulk scan`` (many videos, many replicas, exactly-once rows,
resume) and ``deepfake-bulk prepare`` (a training set's crops).

- ``cli.py``: the console script; Ray is imported only once a command runs.
- ``engine.py``: Ray (local cluster or KubeRay) and the one actor-pool map both commands use.
- ``sources.py``: paths, globs, manifests and object-store URIs (PyArrow file systems).
- ``parts.py``: the output folder: one atomic part per shard, the merge, what a re-run skips.
- ``scan.py``: the scan workers (one ``DetectorClient`` each) and the driver.
- ``prepare.py``: ``deepfake-prepare``'s path with its videos cropped on Ray.

Why Ray and not Apache Beam: when the engine was chosen, Beam's Python SDK needed protobuf 6, which
TensorFlow 2.19 refused; with TensorFlow 2.20 it installs, and the choice stands: ``ray[data]``
adds only pandas, pyarrow, fsspec, msgpack and filelock; Ray Data's actor pools
keep one client and one face detector per worker, its retries, restarts and backpressure are its
own, and KubeRay runs the same job on Kubernetes.
"""
