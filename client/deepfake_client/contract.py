"""Names and defaults shared by export, serving and the client (Contracts 1, 2 and 4).

A model version exported today must be scored correctly by a client released last month: these
names never change. Values that may change per version (input size, crop margin, threshold) are
*not* constants here; the client reads them from the server (see ``model_info``).
"""

from __future__ import annotations

MODEL_NAME = "deepfake_detector"

# Contract 2: signatures.
DEFAULT_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "encoded"
INFO_SIGNATURE = "model_info"

IMAGES_INPUT = "images"  # uint8 [batch, S, S, 3], RGB face crops
IMAGE_BYTES_INPUT = "image_bytes"  # string [batch], JPEG or PNG face crops
INFO_INPUT = "batch"  # int32 [n]: a dummy input; TF Serving's REST API refuses signatures without one
PROBABILITY_OUTPUT = "fake_probability"  # float32 [batch]
LOGIT_OUTPUT = "logit"  # float32 [batch]
# model_info outputs, each [n] (every signature keeps a batch dimension, as TF Serving's batching needs)
INFO_INPUT_SIZE = "input_size"  # int32
INFO_CROP_MARGIN = "crop_margin"  # float32
INFO_THRESHOLD = "threshold"  # float32
# The temporal model (only in a version that has it; docs/contracts.md): one score per face track.
SEQUENCE_SIGNATURE = "sequence"
SEQUENCE_FRAMES_INPUT = "frames"  # uint8 [batch, T, S, S, 3]: a track's crops, zero-padded to T
SEQUENCE_LENGTHS_INPUT = (
    "lengths"  # int32 [batch]: how many of the T crops are the track's (the rest is masked)
)
# model_info outputs of such a version, each [n]: T, and the threshold of the combined score
# (deepfake_client.sequences.combine) that replaces ``threshold`` when tracks are scored as sequences
INFO_SEQUENCE_LENGTH = "sequence_length"  # int32
INFO_SEQUENCE_THRESHOLD = "sequence_threshold"  # float32

# Contract 1: labels and files.
STABLE_LABEL = "stable"
CANARY_LABEL = "canary"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
METADATA_FILE = "assets.extra/model.json"

# Contract 3: the face detector that training data is prepared with and the client scans with (box
# sizes differ between detectors, and so do the crops), and defaults for a version that does not
# say otherwise.
DEFAULT_DETECTOR = "centerface"
DEFAULT_CROP_MARGIN = 0.3
DEFAULT_THRESHOLD = 0.5

# Contract 4: verdict labels.
FAKE = "FAKE"
REAL = "REAL"
NO_FACE = "NO_FACE"
