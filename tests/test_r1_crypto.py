"""Review R1: an envelope cut, changed or oversized fails loudly (never ciphertext handed back
as content), a stream that returns short reads decrypts, and genro-storage interop both ways."""

from __future__ import annotations

import io
import struct

import pytest
from cryptography.fernet import Fernet

from storied import StorageManager
from storied.crypto import MAX_HEADER, DecryptionError, Keyring, MissingKeyError

K1, K2 = (Fernet.generate_key().decode() for _ in range(2))


class Trickle(io.RawIOBase):
    """A stream whose reads return at most 5 bytes (as sockets and raw files may)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(5, size) if size >= 0 else 5)


def sealed_both(ring: Keyring, data: bytes) -> list[bytes]:
    return [ring.encrypt(data, "acme"),
            b"".join(ring.encrypt_stream(io.BytesIO(data), "acme"))]


@pytest.mark.parametrize("kind", [0, 1])
def test_a_changed_or_cut_header_is_an_error_not_content(kind: int) -> None:
    ring = Keyring(f"acme:{K1}")
    sealed = sealed_both(ring, b"secret")[kind]
    header_end = sealed.index(b"\n")
    bad = [
        sealed.replace(b":acme\n", b":ACME\n", 1),        # a domain outside the charset
        sealed.replace(b":acme\n", b":ac me\n", 1),
        sealed[:header_end],                              # cut inside the header
        sealed[:7] + b"x" * MAX_HEADER + sealed[header_end:],  # a header line too long
    ]
    for data in bad:
        with pytest.raises(DecryptionError, match="malformed"):
            ring.decrypt(data)
        with pytest.raises(DecryptionError, match="malformed"):
            b"".join(ring.decrypt_stream(io.BytesIO(data)))
    manager = StorageManager()  # no keys at all: still no ciphertext as content
    with pytest.raises(DecryptionError):
        manager.decrypt(bad[0])
    with pytest.raises(MissingKeyError, match="acme"):
        manager.decrypt(sealed)


def test_wrong_key_and_other_domain_name_the_domain() -> None:
    for sealed in sealed_both(Keyring(f"acme:{K1}"), b"secret"):
        with pytest.raises(DecryptionError, match="acme"):
            Keyring(f"acme:{K2}").decrypt(sealed)
        with pytest.raises(MissingKeyError, match="acme"):
            Keyring(f"other:{K1}").decrypt(sealed)


def test_short_reads_decrypt_the_stream() -> None:
    ring = Keyring(f"acme:{K1}")
    data = bytes(range(256)) * 700
    for sealed in sealed_both(ring, data):
        assert b"".join(ring.decrypt_stream(Trickle(sealed))) == data


def test_a_record_length_beyond_any_written_is_refused_before_buffering() -> None:
    ring = Keyring(f"acme:{K1}")
    sealed = sealed_both(ring, b"x" * 10)[1]
    start = sealed.index(b"\n") + 1 + 16  # after the header and the salt
    forged = sealed[:start] + struct.pack(">I", 2**32 - 1) + sealed[start + 4:]
    with pytest.raises(DecryptionError, match="longer"):
        b"".join(ring.decrypt_stream(io.BytesIO(forged)))



def test_genro_and_storied_interop_with_rotation_and_domains() -> None:
    genro = pytest.importorskip("genro_storage")
    theirs, ours = genro.StorageManager(), StorageManager()
    theirs.set_encryption_keys(f"{K2},acme:{K1}")
    ours.set_encryption_keys(f"acme:{K1},{K2}")
    assert theirs.decrypt(ours.encrypt(b"to genro", "acme")) == b"to genro"
    assert ours.decrypt(theirs.encrypt(b"from genro", "acme")) == b"from genro"
    assert ours.decrypt(theirs.encrypt(b"default", "")) == b"default"
    with pytest.raises(Exception, match="acme"):
        genro.StorageManager().decrypt(ours.encrypt(b"x", "acme"))
