"""The outbound guard (health: "addresses an admin has not allowed"): which addresses health
checks may connect to.

Real HTTP(S) servers on 127.0.0.1 show that the connection goes to the checked address,
with the original Host header, SNI and certificate name; resolvers handed to the guard
answer fixed or changing addresses; `localhost` is refused through the real resolver.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portal.lib import outbound
from portal.lib.outbound import (
    HostNotResolved,
    OutboundRefused,
    Target,
    check_url,
    connection_for,
    default_networks,
    parse_networks,
)
from portal.services.health.probes import probe

DEV = default_networks("development")
PROD = default_networks("production")
EVERYTHING = "0.0.0.0/0,::/0"
METADATA = "169.254.169.254"


class Recorder:
    """A ThreadingHTTPServer on 127.0.0.1 recording the Host header of each request."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.hosts: list[str] = []
        self.sni: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hosts.append(self.headers.get("Host"))
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: outer.sni.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.stop()


def fixed(*addresses):
    """A resolver answering these addresses, counting its calls."""

    def resolve(host, port):
        resolve.calls.append(host)
        return list(addresses)

    resolve.calls = []
    return resolve


def refused(url: str, allowed=EVERYTHING, resolver=None) -> str:
    with pytest.raises(OutboundRefused) as info:
        check_url(url, allowed_networks=allowed, resolver=resolver)
    assert isinstance(info.value, ValueError)
    return str(info.value)


# --- link-local, metadata and its encodings: refused whatever is allowed -----------------


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", "IPv4-mapped 169.254.169.254"),
        ("http://[::ffff:a9fe:a9fe]/", "IPv4-mapped 169.254.169.254"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 169.254.169.254"),
        ("http://[2002:a9fe:a9fe::]/", "6to4 169.254.169.254"),
        ("http://[2001:0:4136:e378:8000:fb2d:5601:5601]/", "Teredo client 169.254.169.254"),
        ("http://[::a9fe:a9fe]/", "IPv4-compatible 169.254.169.254"),
        ("http://2852039166/", "2852039166 (= 169.254.169.254)"),
        ("http://0251.0376.0251.0376/", "0251.0376.0251.0376 (= 169.254.169.254)"),
        ("http://0xa9.0xfe.0xa9.0xfe/", "(= 169.254.169.254)"),
        ("http://169.254.43518/", "(= 169.254.169.254)"),
        ("http://[fe80::1]/", "fe80::1"),
        ("http://[fe80::1%25eth0]/", "fe80::1"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
        ("http://100.100.100.200/", "100.100.100.200"),
        ("https://169.254.1.1:8443/", "169.254.1.1"),
    ],
)
def test_link_local_and_metadata_are_always_refused_in_every_encoding(url, shown):
    message = refused(url, allowed=EVERYTHING)
    assert shown in message
    assert "link-local or cloud metadata" in message and "always refused" in message


def test_a_name_resolving_to_the_metadata_address_is_refused():
    resolver = fixed(METADATA)
    message = refused("http://metadata.internal/", allowed=EVERYTHING, resolver=resolver)
    assert message.startswith("metadata.internal resolves to 169.254.169.254:")
    assert resolver.calls == ["metadata.internal"]


def test_every_resolved_address_is_checked_not_only_the_first():
    resolver = fixed("127.0.0.1", "::ffff:169.254.169.254")
    message = refused("http://both.test/", allowed=DEV, resolver=resolver)
    assert "IPv4-mapped 169.254.169.254" in message


def test_getaddrinfo_shaped_answers_are_understood():
    answer = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (METADATA, 80))]
    assert "169.254.169.254" in refused("http://x.test/", resolver=lambda h, p: answer)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://239.255.255.250:1900/", "multicast"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://[::]:8080/", "unspecified"),
        ("http://0.1.2.3/", "this network"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[::ffff:224.0.0.1]/", "multicast"),
        ("http://[64:ff9b::e000:1]/", "multicast"),
    ],
)
def test_multicast_unspecified_broadcast_and_reserved_are_refused(url, reason):
    assert reason in refused(url, allowed=EVERYTHING)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1/"])
def test_only_http_and_https(url):
    assert "only http and https" in refused(url, allowed=DEV)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http:///health", "no host"),
        ("http://127.0.0.1:99999/", "invalid"),
        ("http://exa mple.test/", "spaces or control characters"),
        ("http://127.0.0.1/\r\nX-Injected: 1", "spaces or control characters"),
        ("", "empty"),
    ],
)
def test_malformed_urls_are_refused(url, reason):
    assert reason in refused(url, allowed=DEV)


# --- the allowed networks ---------------------------------------------------------------


def test_defaults_allow_loopback_only_outside_production():
    dev, prod = parse_networks(DEV), parse_networks(PROD)
    assert ipaddress.ip_network("127.0.0.0/8") in dev and ipaddress.ip_network("::1/128") in dev
    assert not any(ipaddress.ip_address("127.0.0.1") in net for net in prod)
    for private in ("10.1.2.3", "172.20.0.1", "192.168.1.10", "fd12::1"):
        check_url(
            f"http://[{private}]/" if ":" in private else f"http://{private}/",
            allowed_networks=PROD,
        )


def test_public_addresses_need_to_be_allowed():
    message = refused("http://93.184.216.34/", allowed=DEV)
    assert "not in the allowed networks" in message and "HEALTH_CHECK_ALLOWED_NETWORKS" in message
    targets = check_url("http://93.184.216.34/", allowed_networks="93.184.216.0/24")
    assert targets == [Target("http", "93.184.216.34", 80, "93.184.216.34", socket.AF_INET)]


def test_loopback_refused_in_production_even_in_disguise():
    for url in ("http://127.0.0.1/", "http://127.1/", "http://2130706433/", "http://[::1]/"):
        assert "not in the allowed networks" in refused(url, allowed=PROD), url
    assert "IPv4-mapped 127.0.0.1" in refused("http://[::ffff:127.0.0.1]/", allowed=PROD)


def test_nat64_needs_both_the_ipv6_prefix_and_the_inner_address_allowed():
    # 10.0.0.1 is allowed, the NAT64 prefix is not: refused.
    assert "not in the allowed networks" in refused("http://[64:ff9b::a00:1]/", allowed=PROD)
    targets = check_url("http://[64:ff9b::a00:1]/", allowed_networks=PROD + ",64:ff9b::/96")
    assert targets[0].address == "64:ff9b::a00:1"


def test_localhost_is_refused_through_the_real_resolver_when_loopback_is_not_allowed():
    # No resolver given: the system's getaddrinfo answers for localhost.
    with pytest.raises(OutboundRefused) as info:
        check_url("http://localhost:8080/health", allowed_networks=PROD)
    assert str(info.value).startswith("localhost resolves to ")
    assert "not in the allowed networks" in str(info.value)
    # With loopback allowed it passes, and the target is the loopback address.
    targets = check_url("http://localhost:8080/health", allowed_networks=DEV)
    assert {ipaddress.ip_address(t.address).is_loopback for t in targets} == {True}
    assert {t.host for t in targets} == {"localhost"}


def test_an_ipv4_mapped_allowed_address_is_connected_to_as_ipv4():
    [target] = check_url("http://[::ffff:127.0.0.1]:8080/", allowed_networks=DEV)
    assert (target.address, target.family, target.port) == ("127.0.0.1", socket.AF_INET, 8080)


def test_a_name_that_does_not_resolve_is_not_a_refusal():
    def broken(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(HostNotResolved, match="cannot resolve nowhere.test"):
        check_url("http://nowhere.test/", allowed_networks=DEV, resolver=broken)
    with pytest.raises(HostNotResolved, match="no address"):
        check_url("http://nowhere.test/", allowed_networks=DEV, resolver=fixed())


def test_a_hanging_resolver_ends_at_the_timeout():
    def slow(host, port):
        time.sleep(2)
        return ["127.0.0.1"]

    started = time.monotonic()
    with pytest.raises(HostNotResolved, match="no answer within"):
        check_url("http://slow.test/", allowed_networks=DEV, resolver=slow, resolve_timeout=0.2)
    assert time.monotonic() - started < 1.0


def test_a_resolver_answering_garbage_is_refused():
    assert "not an address" in refused("http://x.test/", resolver=fixed("not-an-ip"))


def test_bad_allowed_networks_are_an_error():
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_networks("10.0.0.0/8, banana")


# --- the connection goes to the checked address -----------------------------------------


def test_dns_rebinding_cannot_move_the_connection(recorder):
    """The resolver answers an allowed address first, the metadata address afterwards:
    the request goes to the address that was checked, with the original Host header."""
    answers = iter(["127.0.0.1", METADATA, METADATA])

    def rebinding(host, port):
        rebinding.calls += 1
        return [next(answers)]

    rebinding.calls = 0
    url = f"http://rebind.test:{recorder.port}/"
    [target] = check_url(url, allowed_networks=DEV, resolver=rebinding)
    assert target.address == "127.0.0.1"
    conn = connection_for(target, timeout=2)
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()
    assert rebinding.calls == 1  # connecting asked no resolver again
    assert recorder.hosts == [f"rebind.test:{recorder.port}"]

    # A probe resolves once and connects to what it checked; now the answer is refused.
    result = probe(url, allowed_networks=DEV, resolver=rebinding, timeout=2)
    assert result.status == "unhealthy"
    assert result.message.startswith("refused: rebind.test resolves to 169.254.169.254")
    assert len(recorder.hosts) == 1


def test_probe_resolves_once_and_sends_the_original_host(recorder):
    resolver = fixed("127.0.0.1")
    result = probe(f"http://runtime.test:{recorder.port}", allowed_networks=DEV, resolver=resolver)
    assert result.status == "healthy", result
    assert resolver.calls == ["runtime.test"]
    assert recorder.hosts == [f"runtime.test:{recorder.port}"]


def test_the_default_resolver_is_the_system_one(monkeypatch, recorder):
    calls = []

    def system(host, port):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(outbound, "system_resolver", system)
    result = probe(f"http://named.test:{recorder.port}", allowed_networks=DEV)
    assert result.status == "healthy" and calls == ["named.test"]


# --- HTTPS: pinned address, the host name for SNI and the certificate ------------------


def _certificates(tmp_path, name: str):
    """A CA and a server certificate for `name`, written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject, issuer, key, signer, *, ca, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("Test CA", "Test CA", ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(name, "Test CA", key, ca_key, ca=False, san=name)
    ca_file, cert_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@pytest.fixture
def tls_runtime(tmp_path):
    ca_file, cert_file, key_file = _certificates(tmp_path, "runtime.test")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    server = Recorder(tls=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(ca_file))
    yield server, client_ctx
    server.stop()


def test_https_goes_to_the_checked_address_with_sni_and_verification(tls_runtime):
    server, client_ctx = tls_runtime
    url = f"https://runtime.test:{server.port}"
    result = probe(
        url, allowed_networks=DEV, resolver=fixed("127.0.0.1"), ssl_context=client_ctx, timeout=3
    )
    assert result.status == "healthy", result
    assert server.sni == ["runtime.test"]
    assert server.hosts == [f"runtime.test:{server.port}"]


def test_https_certificate_for_another_name_fails_verification(tls_runtime):
    server, client_ctx = tls_runtime
    url = f"https://impostor.test:{server.port}"
    result = probe(
        url, allowed_networks=DEV, resolver=fixed("127.0.0.1"), ssl_context=client_ctx, timeout=3
    )
    assert result.status == "unhealthy"
    assert result.message.startswith("TLS failed with impostor.test (127.0.0.1)")
    assert "certificate" in result.message.lower()
    assert server.hosts == []


def test_an_international_name_is_resolved_and_sent_in_its_ascii_form(recorder):
    resolver = fixed("127.0.0.1")
    url = f"http://bücher.test:{recorder.port}"
    [target] = check_url(url, allowed_networks=DEV, resolver=resolver)
    assert target.host == "xn--bcher-kva.test" and resolver.calls == ["xn--bcher-kva.test"]
    assert probe(url, allowed_networks=DEV, resolver=resolver, timeout=2).status == "healthy"
    assert recorder.hosts == [f"xn--bcher-kva.test:{recorder.port}"]
