"""Several TF Serving replicas behind one :class:`Transport`: round robin, a dead replica ejected.

Two ways to name the replicas, both reached through ``make_transport`` (so every ``--server``
takes them):

- **a list of URLs**, comma-separated: ``grpc://tfs-0:8500,grpc://tfs-1:8500`` (or ``http://``;
  one protocol family per list). :class:`BalancedTransport` sends each call to the next replica in
  turn. A call that fails because its replica is unreachable (UNAVAILABLE, 502/503, a connection
  reset or refused) is tried again at once on the next one, and the replica is *ejected*: skipped
  for ``eject_s`` seconds, doubled for each failure in a row (up to ``max_eject_s``), as Envoy's
  outlier detection does. A timeout ejects too but is not tried again (its time is spent). When
  every replica is ejected, the one whose ejection ends first is tried (so a replica that came
  back is noticed); the client's :class:`~deepfake_client.transport.base.RetryPolicy` rides out a
  whole outage as with one server.
- **a gRPC name resolver target**: ``dns:///tfserving-pods:8500`` (a Kubernetes headless service:
  one A record per ready pod) or ``ipv4:10.0.0.1:8500,10.0.0.2:8500``. One channel, and gRPC's own
  ``round_robin`` load-balancing policy spreads calls over every address, skips the ones that are
  down and re-resolves the name when a connection drops (pods come and go). Plaintext only (use a
  URL list for ``grpcs://``).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from deepfake_client.errors import DeadlineExceededError, DeepfakeError, InvalidInputError
from deepfake_client.transport.base import (
    DEFAULT_TIMEOUT_S,
    Inputs,
    ModelMetadata,
    PredictResult,
    Target,
    Transport,
    is_retryable,
    split_url,
)

log = logging.getLogger("deepfake_client")

T = TypeVar("T")
RESOLVER_PREFIXES = ("dns:", "ipv4:", "ipv6:")  # gRPC's name resolvers: gRPC balances on its own
DEFAULT_EJECT_S = 2.0
DEFAULT_MAX_EJECT_S = 30.0
# gRPC's own round robin over every address the resolver returns (the service config form of
# grpc.lb_policy_name, which newer gRPC releases prefer).
ROUND_ROBIN_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def is_balanced_url(url: str) -> bool:
    """Whether ``url`` names several replicas (a comma list) or a gRPC resolver target."""
    return url.startswith(RESOLVER_PREFIXES) or "," in url


def split_urls(url: str) -> list[str]:
    """The replica URLs of a comma list, checked; one protocol family (gRPC or REST) for all."""
    urls = [u.strip() for u in url.split(",") if u.strip()]
    if not urls:
        raise InvalidInputError(f"server list {url!r} names no server")
    families = {split_url(u)[0].rstrip("s") for u in urls}  # grpc/grpcs -> grpc, http/https -> http
    if len(families) > 1:
        raise InvalidInputError(f"server list {url!r} mixes gRPC and REST URLs: use one protocol")
    if len(set(urls)) != len(urls):
        raise InvalidInputError(f"server list {url!r} names a server twice")
    return urls


@dataclass
class _Replica:
    transport: Transport
    failures: int = 0  # in a row
    ejected_until: float = 0.0


class BalancedTransport(Transport):
    """Round robin over several transports (one per replica), ejecting a dead replica for a while.

    Args:
        transports: one per replica, all of one protocol family.
        eject_s: how long a replica is skipped after its first failure in a row.
        max_eject_s: the longest ejection (each further failure in a row doubles it).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        transports: Sequence[Transport],
        *,
        eject_s: float = DEFAULT_EJECT_S,
        max_eject_s: float = DEFAULT_MAX_EJECT_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not transports:
            raise InvalidInputError("a balanced transport needs at least one replica")
        self.replicas = [_Replica(t) for t in transports]
        # ``url`` names the protocol (the client picks the wire encoding from its scheme) and the
        # first replica; ``urls`` all of them.
        self.url = transports[0].url
        self.urls = [t.url for t in transports]
        self.eject_s = eject_s
        self.max_eject_s = max_eject_s
        self._clock = clock
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def _order(self) -> list[_Replica]:
        """This call's replicas in the order to try: the next in turn first, ejected ones last."""
        start = next(self._turn) % len(self.replicas)
        ring = self.replicas[start:] + self.replicas[:start]
        now = self._clock()
        with self._lock:
            healthy = [r for r in ring if r.ejected_until <= now]
            ejected = sorted((r for r in ring if r.ejected_until > now), key=lambda r: r.ejected_until)
        return healthy + ejected

    def _failed(self, replica: _Replica, error: DeepfakeError) -> None:
        with self._lock:
            replica.failures += 1
            pause = min(self.max_eject_s, self.eject_s * 2 ** (replica.failures - 1))
            replica.ejected_until = self._clock() + pause
        log.warning("replica %s ejected for %.1f s: %s", replica.transport.url, pause, error)

    def _succeeded(self, replica: _Replica) -> None:
        if replica.failures:
            with self._lock:
                replica.failures, replica.ejected_until = 0, 0.0

    def _call(self, call: Callable[[Transport, float], T], wait_s: float) -> T:
        """``call(transport, wait_s)`` on the next replica; an unreachable one is ejected and the
        next is tried, until every replica has had its chance (then the last error is raised)."""
        order = self._order()
        error: DeepfakeError | None = None
        for k, replica in enumerate(order):
            last = k == len(order) - 1
            try:
                # Only the last resort may wait for its server: waiting on a dead replica while
                # another one is up would stall the call.
                result = call(replica.transport, wait_s if last else 0.0)
            except DeadlineExceededError as err:
                self._failed(replica, err)
                raise
            except DeepfakeError as err:
                if not is_retryable(err):
                    raise
                self._failed(replica, err)
                error = err
                continue
            self._succeeded(replica)
            return result
        assert error is not None
        raise error

    def predict(
        self,
        target: Target,
        signature: str,
        inputs: Inputs,
        *,
        output_filter: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        wait_s: float = 0.0,
    ) -> PredictResult:
        return self._call(
            lambda t, w: t.predict(
                target, signature, inputs, output_filter=output_filter, timeout_s=timeout_s, wait_s=w
            ),
            wait_s,
        )

    def metadata(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> ModelMetadata:
        return self._call(lambda t, w: t.metadata(target, timeout_s=timeout_s, wait_s=w), wait_s)

    def status(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> dict[int, str]:
        return self._call(lambda t, w: t.status(target, timeout_s=timeout_s, wait_s=w), wait_s)

    def close(self) -> None:
        for replica in self.replicas:
            replica.transport.close()


def make_balanced_transport(
    url: str,
    *,
    root_certificates: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Transport:
    """The transport for several replicas: a gRPC resolver target, or a comma list of URLs."""
    if url.startswith(RESOLVER_PREFIXES):
        from deepfake_client.transport.grpc import GrpcTransport

        # ``url`` keeps a grpc:// form of the first address (the client reads the protocol from it).
        first = url.split(":", 1)[1].rsplit("/", 1)[-1].split(",")[0]
        if not first.rpartition(":")[2].isdigit():
            raise InvalidInputError(f"gRPC target {url!r} needs a port, e.g. dns:///tfserving-pods:8500")
        # TLS roots mean a secure channel (grpcs), never certificates silently dropped.
        scheme = "grpcs" if root_certificates is not None else "grpc"
        return GrpcTransport(
            f"{scheme}://{first}",
            root_certificates=root_certificates,
            headers=headers,
            target=url,
            options=[("grpc.service_config", ROUND_ROBIN_CONFIG)],
        )
    from deepfake_client.transport.base import make_transport

    return BalancedTransport(
        [make_transport(u, root_certificates=root_certificates, headers=headers) for u in split_urls(url)]
    )
