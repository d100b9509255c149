"""One webhook POST, safely: only http(s), never to a private address, no redirects, bounded.

A webhook URL is chosen by whoever manages subscriptions, and the worker runs
inside the network, so a URL naming an internal service or the cloud
metadata endpoint would turn the worker into a proxy for it (SSRF). So:

- only http and https, no credentials in the URL;
- the host is resolved here, and every address it resolves to must be
  globally routable: loopback, private (RFC 1918, unique local), link-local
  (169.254.0.0/16, where metadata services live), shared (100.64.0.0/10),
  multicast, reserved and unspecified addresses are refused, also when
  written as IPv4-mapped IPv6;
- the connection goes to an address that was checked, not to a second
  lookup of the name (DNS rebinding between check and connect changes
  nothing);
- the check runs when a subscription is added and again before every
  attempt, since DNS can change; MEDBOOK_WEBHOOK_ALLOW_PRIVATE=1 lifts it
  for local development and tests;
- redirects are not followed (http.client never does): a 3xx is a failed
  attempt;
- the whole exchange has one deadline (connect, TLS, send, response head and
  body), and at most max_response_bytes of the body are read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "medbook-webhooks/1"


class TargetRefusedError(Exception):
    """The URL may not be called: wrong scheme, credentials, or a private address."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: a status code, or an error, and how long it took."""

    status: int | None
    error: str | None
    duration_ms: int


def address_refusal(address: str) -> str | None:
    """Why an IP address may not be a webhook target, or None when it is globally routable."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for label, flag in (("loopback", ip.is_loopback), ("link-local (metadata)", ip.is_link_local),
                        ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
                        ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if flag:
            return f"{ip} is a {label} address"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None


def split_target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL without credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefusedError("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise TargetRefusedError("the URL must not carry credentials")
    if not parts.hostname:
        raise TargetRefusedError("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefusedError("the URL has an invalid port") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def resolve(url: str, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for url; raises TargetRefusedError if any of them is refused."""
    _, host, port, _ = split_target(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefusedError(f"{host} does not resolve: {exc.strerror}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            reason = address_refusal(address)
            if reason:
                raise TargetRefusedError(f"{host} resolves to {reason}")
    return addresses


def _connect_any(addresses: list[str], port: int, timeout: float) -> socket.socket:
    last: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            last = exc
    raise last or OSError("no address to connect to")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked addresses; Host stays the URL's host."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect_any(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked addresses, with the URL's host for SNI and certificate checks."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = addresses

    def connect(self) -> None:
        sock = _connect_any(self._addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool,
         max_response_bytes: int = 65536) -> Outcome:
    """POSTs body to url and reports the outcome; never raises for the target's behaviour."""
    started = time.monotonic()

    def outcome(status: int | None, error: str | None) -> Outcome:
        return Outcome(status, error, int((time.monotonic() - started) * 1000))

    try:
        scheme, host, port, path = split_target(url)
        addresses = resolve(url, allow_private=allow_private)
    except TargetRefusedError as exc:
        return outcome(None, f"refused: {exc}")
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, addresses, timeout)
    expired = threading.Event()

    def cut() -> None:  # the one deadline for the whole exchange
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, cut)
    timer.daemon = True
    timer.start()
    try:
        conn.request("POST", path, body=body, headers={"User-Agent": USER_AGENT, **headers})
        response = conn.getresponse()
        content = response.read(max_response_bytes)
        if expired.is_set():
            return outcome(None, f"timeout after {timeout:g} s")
        if 200 <= response.status < 300:
            return outcome(response.status, None)
        if 300 <= response.status < 400:
            return outcome(response.status, "redirect not followed")
        snippet = content[:200].decode("utf-8", errors="replace").strip()
        return outcome(response.status, snippet or None)
    except TimeoutError:
        return outcome(None, f"timeout after {timeout:g} s")
    except ConnectionRefusedError:
        return outcome(None, "connection refused")
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            return outcome(None, f"timeout after {timeout:g} s")
        return outcome(None, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        timer.cancel()
        conn.close()
