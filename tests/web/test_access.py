"""Who may use the gateway: the bearer token, mutual TLS, and the refusal to listen openly unguarded.

These need no model: a gateway whose model server is down still checks tokens and certificates
(a request that passes them reaches the upload checks and gets their answer instead of a 401).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import ssl
import subprocess

import httpx
import pytest

from deepfake_client.web.auth import bearer_matches, check_bind, is_loopback, read_token
from deepfake_client.web.cli import build_parser, main
from tests.conftest import free_port
from tests.web.conftest import start_gateway, stop_gateway

TOKEN = "s3cret-token-0123456789abcdef"


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture(scope="module")
def locked(token_file: pathlib.Path, tmp_path_factory: pytest.TempPathFactory):
    """A gateway that needs the token (its model server is down: nothing listens there)."""
    process = start_gateway(
        f"grpc://127.0.0.1:{free_port()}",
        tmp_path_factory.mktemp("locked"),
        f"--auth-token-file={token_file}",
        "--retries=0",
        "--timeout=2",
    )
    yield process
    stop_gateway(process)


def upload(url: str, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
    files = {"file": ("notes.txt", b"not a video", "text/plain")}
    return httpx.post(f"{url}/v1/scan", files=files, headers=headers or {}, timeout=30, **kwargs)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"],
)
def test_missing_or_wrong_token_gets_401(locked, authorization: str | None) -> None:
    reply = upload(locked.url, {"authorization": authorization} if authorization else None)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "access token" in reply.json()["error"]["message"]
    assert reply.headers["x-request-id"]
    assert locked.uploads_left() == []  # refused before a byte of the body was stored


def test_the_right_token_passes(locked) -> None:
    reply = upload(locked.url, {"authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 415  # past the token check: the upload itself is judged


def test_page_health_and_metrics_stay_open_and_the_page_knows_a_token_is_needed(locked) -> None:
    assert httpx.get(locked.url).status_code == 200
    assert httpx.get(f"{locked.url}/metrics").status_code == 200
    health = httpx.get(f"{locked.url}/healthz")
    assert health.json()["auth"] == "bearer"
    page = httpx.get(f"{locked.url}/static/app.js").text
    assert "sessionStorage" in page and "Authorization" in page


def test_token_comparison() -> None:
    token = TOKEN.encode()
    assert bearer_matches(f"Bearer {TOKEN}", token) and bearer_matches(f"bearer  {TOKEN} ", token)
    assert not bearer_matches(None, token) and not bearer_matches(f"Token {TOKEN}", token)
    assert not bearer_matches("Bearer é" + TOKEN, token)  # non-ASCII is a mismatch, not an error


def test_token_file_is_read_from_the_environment(token_file: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPFAKE_WEB_TOKEN_FILE", str(token_file))
    assert build_parser().parse_args([]).auth_token_file == str(token_file)
    assert read_token(token_file) == TOKEN.encode()


def test_unusable_token_files_are_one_line_errors(tmp_path: pathlib.Path, capsys) -> None:
    short = tmp_path / "short"
    short.write_text("abc")
    for path, words in ((short, "at least 16"), (tmp_path / "missing", "cannot read")):
        assert main([f"--auth-token-file={path}", "--port=1"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err


def test_refuses_to_listen_openly_without_a_token(token_file: pathlib.Path, capsys) -> None:
    assert main(["--host=0.0.0.0", "--port=1", "--server=grpc://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without authentication" in err and "--insecure" in err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("0.0.0.0", token=TOKEN.encode(), client_ca=None, insecure=False)  # a token: fine
    check_bind("0.0.0.0", token=None, client_ca="ca.pem", insecure=False)  # mutual TLS: fine
    check_bind("0.0.0.0", token=None, client_ca=None, insecure=True)  # the operator insists


def _openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *key,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", *extra, cwd=d,
        )  # fmt: skip
    return d


def test_mutual_tls(pki: pathlib.Path, tmp_path: pathlib.Path) -> None:
    gateway = start_gateway(
        f"grpc://127.0.0.1:{free_port()}",
        tmp_path,
        f"--tls-cert={pki / 'server.pem'}",
        f"--tls-key={pki / 'server.key'}",
        f"--tls-client-ca={pki / 'ca.pem'}",
        "--host=127.0.0.1",
        "--retries=0",
        "--timeout=2",
        tls=(pki / "ca.pem", pki / "client.pem", pki / "client.key"),
    )
    try:
        url = gateway.url.replace("http://", "https://")
        trusted = ssl.create_default_context(cafile=pki / "ca.pem")
        with_cert = ssl.create_default_context(cafile=pki / "ca.pem")
        with_cert.load_cert_chain(pki / "client.pem", pki / "client.key")
        assert httpx.get(f"{url}/openapi.json", verify=with_cert).status_code == 200
        assert upload(url, verify=with_cert).status_code == 415
        with pytest.raises(httpx.TransportError):  # no client certificate: the handshake fails
            httpx.get(f"{url}/openapi.json", verify=trusted)
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served either
            httpx.get(f"{gateway.url}/openapi.json", timeout=5)
    finally:
        stop_gateway(gateway)


def test_bad_tls_files_are_one_line_errors(pki: pathlib.Path, capsys) -> None:
    assert main([f"--tls-cert={pki / 'ca.key'}", f"--tls-key={pki / 'server.key'}", "--port=1"]) == 2
    assert "TLS files cannot be used" in capsys.readouterr().err
    assert main([f"--tls-client-ca={pki / 'ca.pem'}", "--port=1"]) == 2
    assert "--tls-client-ca needs both" in capsys.readouterr().err


def test_readme_token_commands(tmp_path: pathlib.Path) -> None:
    """README's two token commands: make the token file, then scan with curl and the token."""
    import re

    from tests.conftest import ROOT

    if shutil.which("curl") is None or shutil.which("openssl") is None:
        pytest.skip("curl and openssl are needed")
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The upload page") :]
    section = section[: section.index("\n## ", 5)]
    make_token, scan = (
        line.split("  #")[0].strip()
        for line in re.findall(r"```bash\n(.*?)```", section, re.S)[1].splitlines()
    )
    subprocess.run(["bash", "-c", make_token], cwd=tmp_path, check=True, timeout=30)
    (tmp_path / "clip.mp4").write_text("not a clip")
    gateway = start_gateway(
        f"grpc://127.0.0.1:{free_port()}",
        tmp_path / "gw",
        f"--auth-token-file={tmp_path / 'secrets/web_token'}",
    )
    try:
        command = scan.replace("http://localhost:8080", gateway.url)
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, timeout=60, check=True
        )
        assert json.loads(done.stdout)["error"]["status"] == 415  # past the token: the upload is judged
        assert len((tmp_path / "secrets/web_token").read_text().strip()) == 64
    finally:
        stop_gateway(gateway)
