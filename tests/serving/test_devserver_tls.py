"""TLS as TF Serving does it (``--ssl_config_file``), with the client's ``grpcs://`` and headers."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from deepfake_client.errors import ServerUnavailableError

pytestmark = pytest.mark.needs_tf


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def test_grpcs_with_the_servers_certificate(
    tmp_path, exported_version, certificate, devserver_launcher, capsys
) -> None:
    from google.protobuf import text_format

    from deepfake_client import DetectorClient
    from deepfake_client._proto import tfs_pb2
    from export.modelconfig import initial_config, save_config

    key, cert = certificate
    base = tmp_path / "models" / "deepfake_detector"
    shutil.copytree(exported_version, base / "1")
    save_config(tmp_path / "models" / "models.config", initial_config(str(base), 1))
    ssl_config = tmp_path / "ssl.config"
    ssl = tfs_pb2.SSLConfig(server_key=key.read_text(), server_cert=cert.read_text())
    ssl_config.write_text(text_format.MessageToString(ssl))  # TF Serving's file holds the PEM contents
    start, stop = devserver_launcher
    server = start(
        tmp_path / "models",
        tmp_path / "models" / "models.config",
        tmp_path / "server.log",
        "--allow_version_labels_for_unavailable_models=true",
        f"--ssl_config_file={ssl_config}",
    )
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    url = f"grpcs://localhost:{server.grpc_port}"
    try:
        with DetectorClient(
            url, label="stable", root_certificates=cert.read_bytes(), headers={"authorization": "Bearer test"}
        ) as client:
            verdict = client.scan_crops(crops)
            assert verdict.model_version == 1 and len(verdict.faces) == 2
        with DetectorClient(server.grpc_url, label="stable", retries=0, timeout_s=5) as plain:
            with pytest.raises(ServerUnavailableError):
                plain.scan_crops(crops)  # plaintext to a TLS port
        with DetectorClient(url, label="stable", retries=0, timeout_s=5) as untrusting:
            with pytest.raises(ServerUnavailableError):
                untrusting.scan_crops(crops)  # the system's roots do not trust a self-signed certificate
        # deepfake-rollout reaches a TLS server the same way (TF Serving behind a TLS proxy or with
        # --ssl_config_file): status reads the server's version states through it.
        from serving.cli import main as rollout_main

        repository = ["--repository", str(tmp_path / "models")]
        args = ["status", "--json", *repository, "--server", url, "--header", "authorization: Bearer test"]
        assert rollout_main([*args, "--tls-ca", str(cert)]) == 0
        assert '"1":"AVAILABLE"' in capsys.readouterr().out
        assert rollout_main(["status", "--json", *repository, "--server", url]) == 0
        assert '"server":"unreachable' in capsys.readouterr().out  # without the CA: not trusted
    finally:
        assert stop(server) == 0
