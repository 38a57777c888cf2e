"""The outbound guard: which addresses the registry may connect to on an admin's behalf.

Health checks call URLs that company admins type in, so every such URL goes through
`check_url` first:

- only `http` and `https`;
- the host is resolved (`resolver(host, port)`, the system's getaddrinfo by default) and
  EVERY address checked; numeric hosts, including the legacy inet_aton forms
  (`2852039166`, `0251.0376.0251.0376`, `127.1`), are normalized without DNS;
- IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible,
  NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`) are unwrapped, and the IPv4
  address that will really be reached is checked as well;
- link-local and cloud metadata addresses are always refused; so are unspecified,
  multicast, broadcast and reserved addresses; anything else must be inside the allowed
  networks (`HEALTH_CHECK_ALLOWED_NETWORKS`).

`check_url` returns the checked `Target`s, and the connection classes here connect to
exactly those addresses (a second DNS answer cannot change where the request goes), while
sending the original Host header and using the host name for TLS SNI and certificate
verification.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Iterable]

LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

# Refused whatever the allowed networks say: link-local (where clouds put their metadata
# services) and the metadata addresses that live elsewhere.
ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OpenStack... metadata
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure wire server
        "192.0.0.192/32",  # Oracle Cloud metadata (legacy)
    )
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # Linux connects 0.x.x.x to this host
_ALWAYS_REFUSED_PHRASE = "a link-local or cloud metadata address (always refused)"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IPv4/IPv6 translation prefixes (inside the reserved ::/8): usable when allowed, since the
# IPv4 address inside is checked as well.
_TRANSLATION = (_NAT64, ipaddress.ip_network("64:ff9b:1::/48"))
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_HOST_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
SAVE_RESOLVE_TIMEOUT = 2.0  # seconds a save waits for DNS before keeping the name unchecked


class OutboundRefused(ValueError):
    """The URL breaks the outbound rule; the message is the reason, fit to show."""


class HostNotResolved(OSError):
    """The host name did not resolve (or not in time): not a refusal, just no address."""


@dataclass(frozen=True)
class Target:
    """One checked address to connect to, with the name the request is meant for."""

    scheme: str
    host: str  # as written in the URL: the Host header, TLS SNI and certificate name
    port: int
    address: str  # the checked IP address the connection goes to
    family: int  # socket.AF_INET or socket.AF_INET6


# --- allowed networks -------------------------------------------------------------------


def default_networks(environment: str) -> str:
    """Production allows the private ranges only; other environments loopback too."""
    networks = (
        PRIVATE_NETWORKS if environment == "production" else LOOPBACK_NETWORKS + PRIVATE_NETWORKS
    )
    return ",".join(networks)


def parse_networks(spec: str | Iterable | None) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (or an iterable of CIDRs/networks). Raises ValueError."""
    if spec is None:
        return ()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    networks = []
    for item in items:
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(item)
            continue
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"HEALTH_CHECK_ALLOWED_NETWORKS: {text!r} is not a CIDR") from exc
    return tuple(networks)


def allowed_networks_from(config) -> tuple[IPNetwork, ...]:
    """The allowed networks of an app config (a mapping), with the environment's default."""
    spec = config.get("HEALTH_CHECK_ALLOWED_NETWORKS")
    if spec is None:
        spec = default_networks(config.get("ENVIRONMENT", "development"))
    return parse_networks(spec)


# --- addresses --------------------------------------------------------------------------


def numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host means, without DNS; None for a host name.

    Besides the forms ipaddress reads, the legacy inet_aton forms that getaddrinfo and
    browsers still accept: a single number (`2852039166`), octal or hex parts
    (`0251.0376.0251.0376`, `0xa9.0xfe.0xa9.0xfe`) and short forms (`127.1`).
    """
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if "%" in text:  # an IPv6 address with a zone: ipaddress takes "addr%zone"
        return None
    if not re.fullmatch(r"[0-9a-fA-FxX.]+", text) or not text[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def embedded_ipv4(addr: IPAddress) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, with the encoding's name."""
    if addr.version != 6:
        return []
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    value = int(addr)
    if addr.ipv4_mapped is not None:
        found.append(("IPv4-mapped", addr.ipv4_mapped))
    elif value >> 32 == 0xFFFF0000:  # ::ffff:0:a.b.c.d, IPv4-translated (SIIT)
        found.append(("IPv4-translated", ipaddress.IPv4Address(value & 0xFFFFFFFF)))
    elif 1 < value < 2**32:  # ::a.b.c.d, IPv4-compatible (deprecated)
        found.append(("IPv4-compatible", ipaddress.IPv4Address(value)))
    if addr in _NAT64:
        found.append(("NAT64", ipaddress.IPv4Address(value & 0xFFFFFFFF)))
    if addr.sixtofour is not None:
        found.append(("6to4", addr.sixtofour))
    if addr.teredo is not None:
        server, client = addr.teredo
        found += [("Teredo server", server), ("Teredo client", client)]
    return found


def refusal(addr: IPAddress, allowed: tuple[IPNetwork, ...]) -> str | None:
    """Why `addr` may not be connected to, or None when it may (no unwrapping here)."""
    if addr.is_unspecified:
        return "the unspecified address (always refused)"
    if addr.is_link_local or any(addr in net for net in ALWAYS_REFUSED):
        return _ALWAYS_REFUSED_PHRASE
    if addr in _THIS_NETWORK:
        return 'in 0.0.0.0/8 ("this network", reaches the local host; always refused)'
    if addr == _BROADCAST:
        return "the broadcast address"
    if addr.is_multicast:
        return "a multicast address"
    reserved = addr.is_reserved or getattr(addr, "is_site_local", False)
    if reserved and not addr.is_loopback and not any(addr in net for net in _TRANSLATION):
        return "a reserved address"
    if not any(addr in net for net in allowed):
        shown = ", ".join(str(n) for n in allowed) or "none"
        return f"not in the allowed networks (HEALTH_CHECK_ALLOWED_NETWORKS: {shown})"
    return None


def check_address(
    addr: IPAddress, allowed: tuple[IPNetwork, ...]
) -> tuple[IPAddress | None, str | None]:
    """(the address to connect to, None) or (None, the reason it is refused).

    An IPv4-mapped address is connected to as the IPv4 address it maps. For the other
    encodings both the IPv6 address and every IPv4 address inside must pass.
    """
    inner = embedded_ipv4(addr)
    # Always-refused addresses first, wherever they hide, so the message names them.
    for kind, v4 in inner:
        if refusal(v4, ()) == _ALWAYS_REFUSED_PHRASE:
            return None, f"{kind} {v4}, {_ALWAYS_REFUSED_PHRASE}"
    if inner and inner[0][0] == "IPv4-mapped":
        kind, v4 = inner[0]
        reason = refusal(v4, allowed)
        return (None, f"{kind} {v4}, {reason}") if reason else (v4, None)
    for kind, v4 in inner:
        reason = refusal(v4, allowed)
        if reason:
            return None, f"{kind} {v4}, {reason}"
    reason = refusal(addr, allowed)
    return (None, reason) if reason else (addr, None)


# --- resolving --------------------------------------------------------------------------


def system_resolver(host: str, port: int) -> list:
    """The system's answer for `host` (getaddrinfo, TCP only)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _address_of(entry) -> str:
    """An address string from a getaddrinfo tuple, a sockaddr or a plain string."""
    if isinstance(entry, tuple):
        if len(entry) == 5 and isinstance(entry[4], tuple):
            return str(entry[4][0])
        return str(entry[0])
    return str(entry)


def _resolve(host: str, port: int, resolver: Resolver, timeout: float | None) -> list[str]:
    """The addresses `resolver` gives for `host`; within `timeout` seconds when given (a
    lookup cannot be interrupted, so it runs in a daemon thread that is left behind)."""

    def lookup() -> list[str]:
        try:
            entries = list(resolver(host, port))
        except (OSError, UnicodeError) as exc:
            raise HostNotResolved(f"cannot resolve {host}: {exc}") from exc
        if not entries:
            raise HostNotResolved(f"cannot resolve {host}: no address")
        return [_address_of(e) for e in entries]

    if timeout is None:
        return lookup()
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = lookup()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, name="outbound-resolve", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        raise HostNotResolved(f"cannot resolve {host}: no answer within {timeout:.3g} s")
    if "error" in box:
        raise box["error"]
    return box["result"]


# --- the check --------------------------------------------------------------------------


def check_url(
    url: str,
    *,
    allowed_networks,
    resolver: Resolver | None = None,
    resolve_timeout: float | None = None,
) -> list[Target]:
    """The checked addresses to connect to for `url`.

    Raises OutboundRefused (a ValueError; the message is the reason) when the URL breaks
    the rule, HostNotResolved when its host name has no address (in time).
    """
    allowed = parse_networks(allowed_networks)
    if not isinstance(url, str) or not url:
        raise OutboundRefused("the URL is empty")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise OutboundRefused("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"the URL is invalid: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise OutboundRefused(f"only http and https URLs are allowed, not {scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise OutboundRefused("the URL has no host")
    port = port or (443 if scheme == "https" else 80)

    literal = numeric_host(host)
    if literal is not None:
        subject = str(literal) if str(literal) == host else f"{host} (= {literal})"
        candidates = [(literal, subject)]
    else:
        if ":" in host:
            raise OutboundRefused(f"{host} is not a valid IPv6 address")
        try:
            ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise OutboundRefused(f"{host!r} is not a valid host name") from exc
        if not _HOST_NAME.match(ascii_host):
            raise OutboundRefused(f"{host!r} is not a valid host name")
        host = ascii_host  # what DNS, the Host header and TLS see
        candidates = []
        for text in _resolve(host, port, resolver or system_resolver, resolve_timeout):
            addr = numeric_host(text)
            if addr is None:
                raise OutboundRefused(f"{host} resolves to {text!r}, which is not an address")
            candidates.append((addr, f"{host} resolves to {addr}"))

    targets: list[Target] = []
    for addr, subject in candidates:
        connect_to, reason = check_address(addr, allowed)
        if reason:
            raise OutboundRefused(f"{subject}: {reason}")
        family = socket.AF_INET if connect_to.version == 4 else socket.AF_INET6
        target = Target(scheme, host, port, str(connect_to), family)
        if target not in targets:
            targets.append(target)
    return targets


# --- connecting to the checked address --------------------------------------------------


class DeadlineExceeded(TimeoutError):
    """The overall deadline of a request passed."""


def _remaining(deadline: float | None, default: float | None) -> float | None:
    if deadline is None:
        return default
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline passed")
    return left


def open_connection(target: Target, timeout: float | None) -> socket.socket:
    """A TCP connection to the target's checked address (numeric: no DNS here)."""
    info = socket.getaddrinfo(
        target.address, target.port, target.family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
    )
    family, type_, proto, _canon, sockaddr = info[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class _DeadlineReader(io.RawIOBase):
    """Reads from a socket, each read bounded by what is left of the overall deadline, so
    a server trickling one byte at a time still ends at the deadline."""

    def __init__(self, owner: DeadlineSocket):
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        sock = self._owner._sock
        sock.settimeout(_remaining(self._owner._deadline, None))
        return sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner._release()
        super().close()


class DeadlineSocket:
    """The socket http.client sees: sends and reads bounded by one overall deadline.

    Like socket.makefile, a reader keeps the socket open until it is closed too
    (http.client closes the connection before the body of a `Connection: close` answer
    has been read)."""

    def __init__(self, sock, deadline: float):
        self._sock, self._deadline = sock, deadline
        self._readers, self._closed = 0, False

    def sendall(self, data) -> None:
        self._sock.settimeout(_remaining(self._deadline, None))
        self._sock.sendall(data)

    def makefile(self, mode="rb", *args, **kwargs):
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def _release(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self._sock.close()

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self._sock.close()

    def __getattr__(self, name):
        return getattr(self._sock, name)


class PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a checked Target: the socket goes to `target.address`, the
    Host header names `target.host`. With `deadline` (a time.monotonic() value) the whole
    exchange, connect to last byte read, ends by then."""

    def __init__(self, target: Target, *, timeout: float | None = None, deadline=None):
        super().__init__(target.host, target.port, timeout=timeout)
        self.target, self.deadline = target, deadline

    def connect(self) -> None:
        sock = open_connection(self.target, _remaining(self.deadline, self.timeout))
        self.sock = DeadlineSocket(sock, self.deadline) if self.deadline else sock


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked Target: TCP to `target.address`; SNI, certificate verification
    and the Host header use `target.host`."""

    def __init__(
        self,
        target: Target,
        *,
        timeout: float | None = None,
        deadline=None,
        context: ssl.SSLContext | None = None,
    ):
        super().__init__(
            target.host,
            target.port,
            timeout=timeout,
            context=context or ssl.create_default_context(),
        )
        self.target, self.deadline = target, deadline

    def connect(self) -> None:
        raw = open_connection(self.target, _remaining(self.deadline, self.timeout))
        try:
            sock = self._context.wrap_socket(
                raw, server_hostname=self.host, do_handshake_on_connect=False
            )
            _handshake(sock, self.deadline, self.timeout)
        except BaseException:
            raw.close()
            raise
        self.sock = DeadlineSocket(sock, self.deadline) if self.deadline else sock


def _handshake(sock: ssl.SSLSocket, deadline: float | None, timeout: float | None) -> None:
    """The TLS handshake, bounded by the deadline as a whole (not per read)."""
    if deadline is None:
        sock.settimeout(timeout)
        sock.do_handshake()
        return
    sock.setblocking(False)
    try:
        while True:
            try:
                sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                ready = select.select([sock], [], [], _remaining(deadline, None))[0]
            except ssl.SSLWantWriteError:
                ready = select.select([], [sock], [], _remaining(deadline, None))[1]
            if not ready:
                raise DeadlineExceeded("deadline passed during the TLS handshake")
    finally:
        sock.setblocking(True)


def connection_for(
    target: Target,
    *,
    timeout: float | None = None,
    deadline: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return PinnedHTTPSConnection(
            target, timeout=timeout, deadline=deadline, context=ssl_context
        )
    return PinnedHTTPConnection(target, timeout=timeout, deadline=deadline)
