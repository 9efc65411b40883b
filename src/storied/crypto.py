"""At-rest encryption, compatible with genro-storage 0.8.4's envelope, plus a streaming format.

**Fernet envelope** (genro-storage's ``#GNRE1``; what storied writes for whole-content writes, so
each library reads what the other wrote)::

    #GNRE1:<domain>\\n<Fernet token>

The first line routes the payload to a domain's keyring; no header means plain content, passed
through untouched. The header is not authenticated (Fernet's HMAC covers the token): tampering
with it only misroutes the key lookup, which then fails loudly.

**Streaming envelope** (storied's own, for content that must not be held in memory)::

    #STRE1:<domain>\\n
    salt (16 bytes)
    record*      record = length (4 bytes, big-endian, of the ciphertext) || ciphertext

Each record is at most :data:`CHUNK` plaintext bytes sealed with AES-256-GCM under a key derived
by HKDF-SHA256 from the domain's first Fernet key and the salt (a fresh salt per file). The
nonce is the record's sequence number (12 bytes, big-endian), and the associated data is the
header line plus one byte: ``0`` for a record, ``1`` for the final record. Records can be neither
reordered (the nonce), moved between files (the salt), nor dropped at the end (a stream must end
with a final record; a truncated file is an error, never shorter plaintext). Decryption tries the
domain's keys in order (rotation, as for Fernet).

Keys: ``set_encryption_keys('<key>' | '<new>,<old>' | 'acme:k1,partner:k2')``, Fernet keys
optionally prefixed by a domain (``[a-z0-9_-]{0,64}``); the first key of a domain encrypts, all
decrypt; the domain of the first key is the default. Keys never appear in reprs, logs or errors.
"""

from __future__ import annotations

import base64
import os
import re
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from storied.errors import MissingDependencyError, StorageConfigError, StorageError

__all__ = [
    "CHUNK",
    "DecryptionError",
    "Keyring",
    "MissingKeyError",
]

FERNET_PREFIX = b"#GNRE1:"
STREAM_PREFIX = b"#STRE1:"
MAX_HEADER = 128
DOMAIN = re.compile(r"^[a-z0-9_-]{0,64}$")
#: Plaintext bytes per record of the streaming format.
CHUNK = 64 * 1024
_SALT = 16
_TAG = 16  # AES-GCM's tag, appended to each record's ciphertext


class MissingKeyError(StorageError, LookupError):
    """Content is encrypted for a domain with no installed key (or a write asks for one)."""


class DecryptionError(StorageError, ValueError):
    """No installed key of the content's domain opens it, or it was tampered with or cut."""


def _crypto() -> Any:
    try:
        from cryptography import fernet
    except ImportError as exc:  # pragma: no cover - the encryption extra is installed in tests
        raise MissingDependencyError(
            "At-rest encryption needs 'cryptography': pip install 'storied[encryption]'"
        ) from exc
    return fernet


def split_header(data: bytes, strict: bool = True) -> tuple[bytes | None, str | None, bytes]:
    """``(prefix, domain, rest)`` of stored bytes; ``(None, None, data)`` when not enveloped.

    Content that starts with an envelope prefix but whose header line is not well formed (no
    newline in the first :data:`MAX_HEADER` bytes, a domain outside ``[a-z0-9_-]{0,64}``) is
    a :class:`DecryptionError` with ``strict`` (storied's reads: a header cut or changed
    must fail loudly, never hand back ciphertext as if it were the content); without it, as
    genro-storage 0.8.4 does, such bytes are not an envelope and pass through.
    """
    for prefix in (FERNET_PREFIX, STREAM_PREFIX):
        if data.startswith(prefix):
            newline = data.find(b"\n", 0, MAX_HEADER)
            domain = (data[len(prefix):newline].decode("ascii", errors="replace")
                      if newline >= 0 else None)
            if domain is None or not DOMAIN.match(domain):
                if strict:
                    raise DecryptionError(
                        f"Content starts with {prefix.decode()} but its envelope header is "
                        "malformed (cut, or changed): refusing to return it as plain content")
                return None, None, data
            return prefix, domain, data[newline + 1:]
    return None, None, data


class Keyring:
    """Installed key material, by domain. Its repr never shows a key."""

    default: str

    def __init__(self, keys: str) -> None:
        fernet = _crypto()
        entries = [k.strip() for k in (keys or "").split(",") if k.strip()]
        if not entries:
            raise StorageConfigError(
                "set_encryption_keys: at least one key is required (got empty key material)")
        self._raw: dict[str, list[bytes]] = {}
        for entry in entries:
            domain, sep, key = entry.partition(":")
            if not sep:
                domain, key = "", entry
            domain = domain.strip()
            if not DOMAIN.match(domain):
                raise StorageConfigError(
                    f"Invalid encryption domain {domain!r}: expected [a-z0-9_-] up to 64 "
                    "characters")
            try:
                fernet.Fernet(key.strip())
            except (ValueError, TypeError):
                raise StorageConfigError(
                    f"Encryption key #{entries.index(entry) + 1} (domain {domain!r}) is not a "
                    "Fernet key (32 url-safe base64 bytes)") from None
            self._raw.setdefault(domain, []).append(key.strip().encode("ascii"))
        self.default = next(iter(self._raw))
        self._ciphers = {d: fernet.MultiFernet([fernet.Fernet(k) for k in ks])
                         for d, ks in self._raw.items()}

    @property
    def domains(self) -> list[str]:
        return list(self._raw)

    def __repr__(self) -> str:
        return f"Keyring(domains={self.domains!r})"

    def _domain(self, domain: str | None, action: str) -> str:
        domain = self.default if domain is None else domain
        if not DOMAIN.match(domain):
            raise StorageConfigError(
                f"Invalid encryption domain {domain!r}: expected [a-z0-9_-] up to 64 characters")
        if domain not in self._raw:
            raise MissingKeyError(
                f"Cannot {action} for encryption domain {domain!r}: no key installed for it "
                "(StorageManager.set_encryption_keys)")
        return domain

    # ---------------------------------------------------------------- Fernet envelope
    def encrypt(self, data: bytes, domain: str | None = None) -> bytes:
        """``data`` sealed in the ``#GNRE1`` envelope of ``domain`` (default: the default)."""
        domain = self._domain(domain, "encrypt")
        token = self._ciphers[domain].encrypt(bytes(data))
        return FERNET_PREFIX + domain.encode("ascii") + b"\n" + token  # type: ignore[no-any-return]

    def decrypt(self, data: bytes) -> bytes:
        """The plaintext of either envelope; anything else unchanged.

        Raises:
            MissingKeyError: The envelope names a domain with no installed key.
            DecryptionError: No key of that domain opens it (wrong key, tampered, truncated).
        """
        prefix, domain, rest = split_header(data)
        if prefix is None or domain is None:
            return data
        domain = self._domain(domain, "decrypt")
        if prefix == STREAM_PREFIX:
            header = data[: len(data) - len(rest)]
            return b"".join(self._open_records(domain, header, _chunks_of(rest)))
        try:
            return self._ciphers[domain].decrypt(rest)  # type: ignore[no-any-return]
        except _crypto().InvalidToken:
            raise DecryptionError(
                f"Cannot decrypt content of encryption domain {domain!r}: no installed key of "
                "that domain opens it (wrong key, or the content was changed)") from None

    # ---------------------------------------------------------------- streaming envelope
    def _aead(self, domain: str, salt: bytes) -> list[Any]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        found = []
        for key in self._raw[domain]:
            material = base64.urlsafe_b64decode(key)
            derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                           info=b"storied-stream-v1").derive(material)
            found.append(AESGCM(derived))
        return found

    def encrypt_stream(self, source: BinaryIO, domain: str | None = None) -> Iterator[bytes]:
        """The ``#STRE1`` envelope of ``source``'s bytes, produced chunk by chunk (memory: two
        chunks whatever the size)."""
        domain = self._domain(domain, "encrypt")
        header = STREAM_PREFIX + domain.encode("ascii") + b"\n"
        salt = os.urandom(_SALT)
        aead = self._aead(domain, salt)[0]
        yield header + salt
        seq = 0
        pending = source.read(CHUNK)
        while True:
            following = source.read(CHUNK) if pending else b""
            final = not following
            sealed = aead.encrypt(struct.pack(">4xQ", seq), pending, header + bytes([final]))
            yield struct.pack(">I", len(sealed)) + sealed
            if final:
                return
            pending, seq = following, seq + 1

    def decrypt_stream(self, stream: BinaryIO) -> Iterator[bytes]:
        """The plaintext of a stored stream in either envelope (a ``#GNRE1`` token is read
        whole: genro-storage's format has no records), or the stream's bytes as they are."""
        head = _read_up_to(stream, MAX_HEADER)  # a stream may return fewer bytes per read
        prefix, domain, rest = split_header(head)
        if prefix is None or domain is None:
            yield head
            while chunk := stream.read(CHUNK):
                yield chunk
            return
        if prefix == FERNET_PREFIX:
            yield self.decrypt(head + _read_up_to(stream, -1))
            return
        domain = self._domain(domain, "decrypt")
        header = head[: len(head) - len(rest)]
        yield from self._open_records(domain, header, _records(rest, stream))

    def _open_records(self, domain: str, header: bytes, records: Iterator[bytes]
                      ) -> Iterator[bytes]:
        first = next(records, None)
        if first is None or len(first) != _SALT:
            raise DecryptionError(f"Encrypted content of domain {domain!r} is truncated")
        candidates = self._aead(domain, first)
        from cryptography.exceptions import InvalidTag

        aead, seq, finished = None, 0, False
        for sealed in records:
            if finished:
                raise DecryptionError(f"Encrypted content of domain {domain!r} has data after "
                                      "its final record (tampered)")
            nonce = struct.pack(">4xQ", seq)
            plain = None
            for candidate in ([aead] if aead is not None else candidates):
                for final in (False, True):
                    try:
                        plain = candidate.decrypt(nonce, sealed, header + bytes([final]))
                    except InvalidTag:
                        continue
                    aead, finished = candidate, final
                    break
                if plain is not None:
                    break
            if plain is None:
                raise DecryptionError(
                    f"Cannot decrypt content of encryption domain {domain!r}: no installed key "
                    "of that domain opens it (wrong key, or the content was changed)")
            yield plain
            seq += 1
        if not finished:
            raise DecryptionError(
                f"Encrypted content of domain {domain!r} is truncated (no final record)")


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """``n`` bytes of ``stream`` (``-1``: all of it), fewer only at its end."""
    got = bytearray()
    while n < 0 or len(got) < n:
        more = stream.read(n - len(got) if n >= 0 else CHUNK)
        if not more:
            break
        got.extend(more)
    return bytes(got)


def _chunks_of(rest: bytes) -> Iterator[bytes]:
    """Salt then records of an in-memory streaming envelope."""
    import io

    return _records(b"", io.BytesIO(rest))


def _records(already: bytes, stream: BinaryIO) -> Iterator[bytes]:
    """The salt, then each record's ciphertext, from ``already`` + the rest of ``stream``."""
    buffer = bytearray(already)

    def need(n: int) -> bytes | None:
        while len(buffer) < n:
            more = stream.read(max(CHUNK, n - len(buffer)))
            if not more:
                if buffer:
                    raise DecryptionError("Encrypted content is truncated mid-record")
                return None
            buffer.extend(more)
        out = bytes(buffer[:n])
        del buffer[:n]
        return out

    salt = need(_SALT)
    if salt is None:
        return
    yield salt
    while True:
        size = need(4)
        if size is None:
            return
        length = struct.unpack(">I", size)[0]
        if length > CHUNK + _TAG:  # never buffer what a changed length field claims
            raise DecryptionError("Encrypted content has a record longer than any written "
                                  "(tampered)")
        sealed = need(length)
        if sealed is None:
            raise DecryptionError("Encrypted content is truncated mid-record")
        yield sealed
