"""Webhooks over https: the server's certificate is verified (a self-signed one is refused
and retried, never sent to), and trusted through the usual SSL_CERT_FILE."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import standardwebhooks

from storied import StorageManager
from test_he_webhooks import FAST, SECRET, Receiver, emit

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    cert, key = self_signed(tmp_path)
    server = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    server.url = server.url.replace("http://", "https://")
    yield server, cert
    server.stop()


def test_https_verifies_the_certificate(tls: tuple[Receiver, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server, cert = tls
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        storage.add_webhook(server.url, secret=SECRET, retry=FAST, outbox=tmp_path / "o")
        emit(storage, 1)
        assert storage.flush_webhooks(timeout=0.5) is False  # untrusted: retried, not sent
        assert server.delivered == []
        storage.close_webhooks()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the user's CA, the usual way
        storage.add_webhook(server.url, secret=SECRET, retry=FAST, outbox=tmp_path / "o")
        assert storage.flush_webhooks(timeout=5)
        headers, body = server.delivered[0]
        assert standardwebhooks.Webhook(SECRET).verify(body, headers)["source"] == "storied://m"
    finally:
        storage.close_webhooks()
