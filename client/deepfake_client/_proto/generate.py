"""Regenerate ``tfs_pb2.py`` from ``tfs.proto``.

The generated module is committed. It is generated with the protoc of grpcio-tools 1.62
(protobuf 4.25): that gencode carries no runtime-version check and loads with protobuf 4.21 to
6.x, so the client works beside whatever protobuf a user's TensorFlow pins.

    pip install 'grpcio-tools==1.62.*' && python client/deepfake_client/_proto/generate.py
"""

from __future__ import annotations

import pathlib
import sys


def main() -> int:
    from grpc_tools import protoc  # a development-only dependency

    here = pathlib.Path(__file__).resolve().parent
    root = here.parents[1]  # client/
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    return protoc.main(
        ["protoc", f"-I{root}", f"-I{include}", f"--python_out={root}", str(here / "tfs.proto")]
    )


if __name__ == "__main__":
    sys.exit(main())
