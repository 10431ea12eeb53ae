"""The gateway's OpenAPI 3.1 document (served at ``GET /openapi.json``), written out by hand.

The verdict schema mirrors ``Verdict.to_dict`` (Contract 4); a test checks it against real answers.
"""

from __future__ import annotations

from typing import Any

_NUMBER_MAP = {"type": "object", "additionalProperties": {"type": "number"}}

FACE = {
    "type": "object",
    "required": ["frame_index", "timestamp_s", "box", "confidence", "fake_probability", "track"],
    "properties": {
        "frame_index": {"type": "integer"},
        "timestamp_s": {"type": "number"},
        "box": {
            "type": ["array", "null"],
            "items": {"type": "number"},
            "description": "[x, y, w, h] in pixels",
        },
        "confidence": {"type": "number", "description": "the face detector's confidence"},
        "fake_probability": {"type": "number", "minimum": 0, "maximum": 1},
        "track": {"type": "integer", "description": "which person (faces linked across frames)"},
    },
}
TRACK = {
    "type": "object",
    "required": ["track", "faces", "first_frame", "last_frame", "score", "label", "minor"],
    "properties": {
        "track": {"type": "integer"},
        "faces": {"type": "integer"},
        "first_frame": {"type": "integer"},
        "last_frame": {"type": "integer"},
        "score": {"type": "number"},
        "label": {"type": "string", "enum": ["FAKE", "REAL"]},
        "minor": {"type": "boolean"},
        "face": {
            "type": "integer",
            "description": "with ?thumbnails=1: index in faces of the person's representative face",
        },
        "thumbnail": {
            "type": "string",
            "description": "with ?thumbnails=1: that face's scored crop as a JPEG data: URL",
        },
    },
}
VERDICT = {
    "type": "object",
    "required": [
        "source",
        "kind",
        "label",
        "score",
        "threshold",
        "aggregation",
        "model_name",
        "model_version",
        "target",
        "frames",
        "face_count",
        "tracks",
        "timings_s",
        "faces",
    ],
    "properties": {
        "source": {"type": "string", "description": "the uploaded file's name"},
        "kind": {"type": "string", "enum": ["video", "image"]},
        "label": {"type": "string", "enum": ["FAKE", "REAL", "NO_FACE"]},
        "score": {
            "type": ["number", "null"],
            "description": "aggregated fake probability; null without a face",
        },
        "threshold": {"type": "number"},
        "aggregation": {"type": "string", "enum": ["confident", "mean", "max"]},
        "model_name": {"type": "string"},
        "model_version": {"type": ["integer", "null"], "description": "the version that answered"},
        "target": {"type": "string", "description": "what was asked for: version:N, label:L or latest"},
        "frames": {"type": "integer"},
        "face_count": {"type": "integer"},
        "tracks": {"type": "array", "items": {"$ref": "#/components/schemas/Track"}},
        "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
        "timings_s": _NUMBER_MAP,
        "size_bytes": {"type": "integer"},
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "status"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "status": {"type": "integer"},
            },
        }
    },
}
HEALTH = {
    "type": "object",
    "required": ["status", "model"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "model": {"type": "string"},
        "stable_version": {"type": ["integer", "null"]},
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "target": {"type": "string"},
        "uploads_in_flight": {"type": "integer"},
        "auth": {"type": "string", "enum": ["bearer", "none"], "description": "what /v1/* needs"},
        "checks": {
            "type": "object",
            "description": "upload_folder and model_server: 'ok' or what is wrong",
            "additionalProperties": {"type": "string"},
        },
        "error": {"type": "string"},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(*, max_upload_bytes: int) -> dict[str, Any]:
    """The OpenAPI document of the gateway, stating its upload limit."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "deepfake-serving gateway",
            "version": "1",
            "description": "Upload an image or a video; get the deepfake detector's verdict (Contract 4).",
        },
        "paths": {
            "/v1/scan": {
                "post": {
                    "summary": "Scan an uploaded image or video",
                    "operationId": "scan",
                    "parameters": [
                        {
                            "name": "thumbnails",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean", "default": False},
                            "description": "add each person's representative face to its track",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "file": {
                                            "type": "string",
                                            "format": "binary",
                                            "description": f"at most {max_upload_bytes} bytes",
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the verdict",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Verdict"}}
                            },
                        },
                        "400": _error("malformed upload, no file field, or a file the model cannot use"),
                        "401": _error("no or wrong 'Authorization: Bearer' token (when one is required)"),
                        "404": _error("the model or the targeted version or label does not exist"),
                        "408": _error("the upload stalled or took longer than the body deadline"),
                        "413": _error(f"the upload is larger than {max_upload_bytes} bytes"),
                        "415": _error(
                            "the input gate refuses the file (not an image or a video, corrupt, truncated, "
                            "too large to decode, empty), or the body is not multipart/form-data"
                        ),
                        "429": _error("this client already has its share of uploads in flight"),
                        "503": _error(
                            "the model server is down, the gateway is busy, or it cannot store uploads"
                        ),
                        "504": _error("the model server did not answer in time"),
                        "507": _error("no room left in the gateway's upload folder"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Can uploads be stored, does the model server answer; the stable version",
                    "operationId": "health",
                    "responses": {
                        "200": {
                            "description": "the model server answers",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                            },
                        },
                        "503": {
                            "description": "the upload folder is unusable or the model server is down",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                            },
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (requests, uploads, scans, verdicts, slots)",
                    "operationId": "metrics",
                    "responses": {
                        "200": {"description": "text exposition format", "content": {"text/plain": {}}}
                    },
                }
            },
            "/v1/device": {
                "get": {
                    "summary": "What the page's on-device mode needs: the device model's facts, the runtime, "
                    "the sampling (frames, threshold); 'available' false with the reason when it cannot run",
                    "operationId": "device",
                    "responses": {
                        "200": {"description": "the on-device facts", "content": {"application/json": {}}}
                    },
                }
            },
            "/v1/model.onnx": {
                "get": {
                    "summary": "The ONNX model of the on-device mode (deepfake-web --device-model)",
                    "operationId": "deviceModel",
                    "responses": {
                        "200": {"description": "ONNX", "content": {"application/octet-stream": {}}},
                        "404": _error("this gateway has no model for the device"),
                    },
                }
            },
            "/v1/face-detector.onnx": {
                "get": {
                    "summary": "The face detector the on-device mode crops with (the client's own)",
                    "operationId": "deviceFaceDetector",
                    "responses": {
                        "200": {"description": "ONNX", "content": {"application/octet-stream": {}}}
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "The upload page",
                    "operationId": "page",
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
        },
        "components": {
            "schemas": {"Verdict": VERDICT, "Face": FACE, "Track": TRACK, "Error": ERROR, "Health": HEALTH}
        },
    }
