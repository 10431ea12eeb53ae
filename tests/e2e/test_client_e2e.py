"""The client against the dev server serving a real exported model, over gRPC and REST."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from deepfake_client import DetectorClient, contract
from deepfake_client.cli import main
from deepfake_client.errors import NotFoundError

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]


@pytest.fixture(params=["grpc", "rest"])
def url(request: pytest.FixtureRequest, devserver) -> str:  # type: ignore[no-untyped-def]
    return devserver.grpc_url if request.param == "grpc" else devserver.rest_url


def test_version_info_comes_from_the_server(url: str, devserver) -> None:  # type: ignore[no-untyped-def]
    model_json = json.loads(
        (devserver.repository / contract.MODEL_NAME / "1" / contract.METADATA_FILE).read_text()
    )
    with DetectorClient(url, label=contract.STABLE_LABEL) as client:
        info = client.info()
    assert info.version == 1 and info.input_size == model_json["input_size"]
    assert info.crop_margin == pytest.approx(model_json["crop_margin"], abs=1e-6)
    assert info.threshold == pytest.approx(model_json["threshold"], abs=1e-6)


def test_scan_image_and_video(url: str, face_image: np.ndarray, face_video: pathlib.Path) -> None:
    with DetectorClient(url, label=contract.STABLE_LABEL, frames=6) as client:
        image = client.scan_image(face_image)
        video = client.scan_video(face_video)
        raw = client.scan_crops([f.crop for f in _faces(client, face_image)])
    for verdict in (image, video):
        assert verdict.model_version == 1 and verdict.label in (contract.FAKE, contract.REAL)
        assert 0.0 <= verdict.score <= 1.0
    assert len(video.faces) >= 4
    assert raw.faces[0].fake_probability == pytest.approx(image.faces[0].fake_probability, abs=1e-5)


def _faces(client: DetectorClient, image: np.ndarray) -> list:  # type: ignore[type-arg]
    from deepfake_client.faces import extract_faces

    info = client.info()
    return extract_faces(image, client.detector, info.crop_margin, info.input_size)


def test_grpc_and_rest_and_both_encodings_agree(devserver, face_image: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    scores = []
    for url in (devserver.grpc_url, devserver.rest_url):
        for encoding in ("uint8", "jpeg"):
            with DetectorClient(url, version=1, encoding=encoding) as client:
                scores.append(client.scan_image(face_image).faces[0].fake_probability)
    assert scores[0] == pytest.approx(scores[2], abs=1e-5)  # same pixels over gRPC and REST
    assert scores[1] == pytest.approx(scores[3], abs=1e-5)
    assert scores[0] == pytest.approx(scores[1], abs=0.05)  # JPEG q95 is close to the pixels


def test_unknown_version_and_label(url: str) -> None:
    for options in ({"version": 99}, {"label": "nope"}):
        with DetectorClient(url, **options) as client:
            with pytest.raises(NotFoundError):
                client.info()


def test_cli_against_the_dev_server(
    devserver, face_image: np.ndarray, tmp_path: pathlib.Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    import cv2

    cv2.imwrite(str(tmp_path / "face.png"), face_image[..., ::-1])
    assert (
        main([str(tmp_path), "--server", devserver.rest_url, "--label", "stable", "--json", "--quiet"]) == 0
    )
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["model_version"] == 1 and verdict["face_count"] == 1
