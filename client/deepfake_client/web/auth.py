"""Who may use the gateway: a bearer token on ``/v1/*``, optional mutual TLS, and a safe bind address.

- ``--auth-token-file F`` (or ``DEEPFAKE_WEB_TOKEN_FILE``): every ``/v1/*`` request must carry
  ``Authorization: Bearer <the file's content>``, compared in constant time; 401 otherwise. The
  page, ``/healthz``, ``/metrics`` and ``/openapi.json`` stay open (health checks and scrapers).
- ``--tls-cert/--tls-key`` serve HTTPS; ``--tls-client-ca`` also requires a client certificate
  signed by that CA (mutual TLS), checked in the TLS handshake.
- Without a token or a client CA the gateway only binds a loopback address, unless ``--insecure``.
"""

from __future__ import annotations

import hmac
import ipaddress
import pathlib

from deepfake_client.errors import InvalidInputError

TOKEN_ENV = "DEEPFAKE_WEB_TOKEN_FILE"
MIN_TOKEN_CHARS = 16


def read_token(path: str | pathlib.Path) -> bytes:
    """The token in ``path`` (surrounding whitespace dropped).

    Raises:
        InvalidInputError: the file cannot be read, is empty, or holds a token too short to be safe.
    """
    try:
        token = pathlib.Path(path).read_bytes().strip()
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot read the token file ({err.strerror or err})") from err
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidInputError(
            f"{path}: the token must be at least {MIN_TOKEN_CHARS} characters "
            "(make one with: openssl rand -hex 32)"
        )
    if any(b <= 32 or b >= 127 for b in token):
        raise InvalidInputError(f"{path}: the token must be printable ASCII without spaces")
    return token


def bearer_matches(authorization: str | None, token: bytes) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` as a Bearer token (constant time)."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("latin-1", "replace"), token)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is only reachable from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_bind(host: str, *, token: bytes | None, client_ca: str | None, insecure: bool) -> None:
    """Refuse to listen beyond this machine with nobody checked, unless the operator insists.

    Raises:
        InvalidInputError: ``host`` is not loopback, there is no token and no client CA, and not ``insecure``.
    """
    if is_loopback(host) or token is not None or client_ca or insecure:
        return
    raise InvalidInputError(
        f"refusing to listen on {host} without authentication: give --auth-token-file "
        f"(or {TOKEN_ENV}) or --tls-client-ca, or --insecure to accept anyone"
    )
