"""At-rest encryption formats: genro-storage 0.8.4 reads what storied writes and the reverse
(the #GNRE1 Fernet envelope), rotation and domains, clear errors naming the domain (never
garbage), keys never in reprs or errors, and the streaming format's chunk authentication."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.fernet import Fernet

from storied import StorageManager
from storied.crypto import CHUNK, DecryptionError, Keyring, MissingKeyError
from storied.errors import StorageConfigError

K1, K2, K3 = (Fernet.generate_key().decode() for _ in range(3))


def test_genro_reads_storied_and_storied_reads_genro() -> None:
    genro = pytest.importorskip("genro_storage")
    theirs = genro.StorageManager()
    theirs.set_encryption_keys(f"acme:{K1},{K2}")
    ours = StorageManager()
    ours.set_encryption_keys(f"acme:{K1},{K2}")
    sealed = ours.encrypt(b"secret payload", "acme")
    assert sealed.startswith(b"#GNRE1:acme\n")
    assert theirs.decrypt(sealed) == b"secret payload"
    assert ours.decrypt(theirs.encrypt(b"from genro", "")) == b"from genro"
    assert ours.decrypt(theirs.encrypt(b"default domain")) == b"default domain"


def test_rotation_domains_and_passthrough() -> None:
    old = Keyring(K1)
    sealed = old.encrypt(b"written with the old key")
    rotated = Keyring(f"{K2},{K1}")  # new first: encrypts; old still decrypts
    assert rotated.decrypt(sealed) == b"written with the old key"
    with pytest.raises(DecryptionError, match="''"):
        Keyring(K1).decrypt(rotated.encrypt(b"new key only"))
    assert rotated.decrypt(b"plain bytes") == b"plain bytes"
    multi = Keyring(f"acme:{K1},partner:{K2}")
    assert multi.default == "acme" and multi.domains == ["acme", "partner"]
    with pytest.raises(MissingKeyError, match="'other'"):
        multi.encrypt(b"x", "other")
    with pytest.raises(MissingKeyError, match="'zzz'"):
        multi.decrypt(b"#GNRE1:zzz\n" + Fernet(K3).encrypt(b"x"))


def test_bad_key_material_and_no_keys_in_messages() -> None:
    for bad in ("", " , ", "BAD:" + K1, "acme:notakey"):
        with pytest.raises(StorageConfigError) as caught:
            Keyring(bad)
        assert K1 not in str(caught.value)
    ring = Keyring(f"acme:{K1}")
    assert K1 not in repr(ring) and K1 not in str(ring.domains)
    with pytest.raises(DecryptionError) as caught:
        ring.decrypt(Keyring(f"acme:{K2}").encrypt(b"x"))
    assert K1 not in str(caught.value) and K2 not in str(caught.value)
    storage = StorageManager()
    assert not storage.encryption_active
    with pytest.raises(MissingKeyError):
        storage.decrypt(Keyring(K1).encrypt(b"x"))
    assert storage.decrypt(b"plain") == b"plain"
    storage.set_encryption_keys(K1)
    assert storage.encryption_active and K1 not in repr(storage)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_streaming_round_trip(size: int) -> None:
    ring = Keyring(f"big:{K1}")
    data = os.urandom(size)
    sealed = b"".join(ring.encrypt_stream(io.BytesIO(data)))
    assert sealed.startswith(b"#STRE1:big\n")
    assert b"".join(ring.decrypt_stream(io.BytesIO(sealed))) == data
    assert ring.decrypt(sealed) == data  # whole-content decrypt reads it too
    assert Keyring(f"big:{K2},big:{K1}").decrypt(sealed) == data  # rotation


def test_streaming_detects_truncation_tampering_and_reordering() -> None:
    ring = Keyring(K1)
    data = os.urandom(3 * CHUNK)
    sealed = b"".join(ring.encrypt_stream(io.BytesIO(data)))
    header_len = len(b"#STRE1:\n") + 16
    record = 4 + CHUNK + 16
    for broken in (
        sealed[:-1],  # cut mid-record
        sealed[: header_len + record],  # cut after a whole record: no final record
        sealed[: header_len + 2 * record] + sealed[header_len + record: header_len + 2 * record]
        + sealed[header_len + 2 * record:],  # a record repeated
        sealed[:200] + bytes([sealed[200] ^ 1]) + sealed[201:],  # one bit flipped
        sealed + sealed[header_len:header_len + record],  # data after the final record
    ):
        with pytest.raises(DecryptionError):
            b"".join(ring.decrypt_stream(io.BytesIO(broken)))
    with pytest.raises(DecryptionError):
        Keyring(K2).decrypt(sealed)


def test_streaming_memory_is_bounded() -> None:
    ring = Keyring(K1)

    class Endless(io.RawIOBase):
        def __init__(self, total: int) -> None:
            self.left = total

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            n = min(len(buffer), self.left)
            buffer[:n] = b"\x00" * n
            self.left -= n
            return n

    biggest = 0
    for piece in ring.encrypt_stream(io.BufferedReader(Endless(64 * CHUNK))):
        biggest = max(biggest, len(piece))
    assert biggest <= CHUNK + 64
