"""Defences against slow and abusive clients: upload slots, body deadlines, a header timeout.

An upload goes through two stages, each with its own bound:

- **receiving** its body: at most ``max_receiving`` at once, ``max_per_client`` per client address
  (over the whole upload, scan included: 429 beyond), each with an idle timeout between chunks and
  a deadline for the whole body (408 when either passes). A stalled client holds a receiving slot
  for ``idle_timeout_s`` at most, and never a scan slot.
- **scanning**: only a fully received upload queues for a scan (``max_waiting`` waiting plus
  ``max_concurrency`` running; 503 beyond). Twenty stalled uploads cannot keep a complete one out.

A connection that has not finished its request headers within ``idle_timeout_s`` is closed
(:class:`HeaderTimeoutProtocol`, uvicorn's h11 protocol plus that timer): uvicorn has no such
timeout of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from deepfake_client.errors import InvalidInputError, ServerUnavailableError


class UploadTimeoutError(InvalidInputError):
    """Raised when a client sends its upload too slowly: an idle gap or the whole-body deadline."""

    http_status = 408


class TooManyUploadsError(ServerUnavailableError):
    """Raised when one client address already has ``max_per_client`` uploads in flight."""

    http_status = 429


class GatewayBusyError(ServerUnavailableError):
    """Raised when every receiving slot, or every place in the scan queue, is taken."""


@dataclass(frozen=True)
class Limits:
    """How much the gateway takes on at once, and how long it waits for a client."""

    max_concurrency: int = 2  # scans running at once
    max_waiting: int = 16  # received uploads waiting for a scan
    max_receiving: int = 32  # bodies being received at once
    max_per_client: int = 8  # uploads in flight per client address, from first byte to verdict
    idle_timeout_s: float = 15.0  # longest silence while receiving headers or body
    body_timeout_s: float = 300.0  # longest time to receive a whole body

    def __post_init__(self) -> None:
        if min(self.max_concurrency, self.max_receiving, self.max_per_client) < 1 or self.max_waiting < 0:
            raise ValueError("the concurrency, receiving and per-client limits must be >= 1, waiting >= 0")
        if self.idle_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("the idle and body timeouts must be > 0")

    @property
    def files_at_once(self) -> int:
        """The most uploads on disk at once (receiving, waiting and scanning)."""
        return self.max_receiving + self.max_waiting + self.max_concurrency


class Slots:
    """Counts uploads receiving and queued, per client address too (one event loop, no locks)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.receiving = 0
        self.queued = 0  # waiting for a scan or being scanned
        self.per_client: Counter[str] = Counter()

    def admit(self, client: str) -> Ticket:
        """A receiving slot for one upload from ``client``.

        Raises:
            TooManyUploadsError: ``client`` already has ``max_per_client`` uploads in flight.
            GatewayBusyError: every receiving slot is taken.
        """
        if self.per_client[client] >= self.limits.max_per_client:
            raise TooManyUploadsError(
                f"this client already has {self.per_client[client]} uploads in flight; wait for one to finish"
            )
        if self.receiving >= self.limits.max_receiving:
            raise GatewayBusyError(
                f"the gateway is busy ({self.receiving} uploads arriving); try again shortly"
            )
        self.receiving += 1
        self.per_client[client] += 1
        return Ticket(self, client)


class Ticket:
    """One upload's place: receiving, then queued for a scan; :meth:`release` gives it back."""

    def __init__(self, slots: Slots, client: str):
        self.slots = slots
        self.client = client
        self.stage = "receiving"

    def received(self) -> None:
        """Move from receiving to the scan queue.

        Raises:
            GatewayBusyError: the scan queue is full (the upload is refused; the ticket is released).
        """
        slots = self.slots
        slots.receiving -= 1
        self.stage = "between"
        if slots.queued >= slots.limits.max_waiting + slots.limits.max_concurrency:
            raise GatewayBusyError(
                f"the gateway is busy ({slots.queued} uploads in flight); try again shortly"
            )
        slots.queued += 1
        self.stage = "queued"

    def release(self) -> None:
        """Give every slot back (idempotent)."""
        slots = self.slots
        if self.stage == "released":
            return
        if self.stage == "receiving":
            slots.receiving -= 1
        elif self.stage == "queued":
            slots.queued -= 1
        slots.per_client[self.client] -= 1
        if slots.per_client[self.client] <= 0:
            del slots.per_client[self.client]
        self.stage = "released"


async def read_body(
    stream: AsyncIterator[bytes], *, idle_timeout_s: float, body_timeout_s: float
) -> AsyncIterator[bytes]:
    """``stream``'s chunks, as long as each comes within ``idle_timeout_s`` and all within ``body_timeout_s``.

    Raises:
        UploadTimeoutError: the client went silent, or is sending too slowly to finish in time.
    """
    import anyio

    deadline = anyio.current_time() + body_timeout_s
    chunks = stream.__aiter__()
    while True:
        left = deadline - anyio.current_time()
        with anyio.move_on_after(min(idle_timeout_s, max(left, 0.0))) as scope:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
        if scope.cancelled_caught:
            if left <= idle_timeout_s:
                raise UploadTimeoutError(
                    f"the upload did not arrive within {body_timeout_s:g} s; send it over a faster link"
                )
            raise UploadTimeoutError(f"the upload stalled: nothing arrived for {idle_timeout_s:g} s")
        yield chunk


def header_timeout_protocol(idle_timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing a connection that sends no complete request headers in time."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        # Armed when the connection opens and again after every response (a kept-alive connection's
        # next request gets the same deadline for its headers), closed if no request began since.
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer = None
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(idle_timeout_s, self._headers_overdue, self.cycle)

        def _headers_overdue(self, armed_cycle: object) -> None:
            idle = self.cycle is None or self.cycle.response_complete
            if self.cycle is armed_cycle and idle and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
