"""Encryption at the node's read/write boundary (``write_*(encrypted=)`` and ``read_*``), as
genro-storage 0.8.4 draws it: ``open()``, ``copy_to()``, versioned streams and
``size()``/``md5hash()`` see the stored bytes (the envelope), ``read_bytes``/``read_text``/
``read`` and diffs see the plaintext."""

from __future__ import annotations

from typing import Any

__all__ = ["opened", "sealed_for_write"]


def sealed_for_write(node: Any, data: Any, encrypted: bool | str | None) -> Any:
    """What a write of ``data`` to ``node`` stores: ``data`` itself, or its ``#GNRE1``
    envelope when ``encrypted`` (or, when it is None, the mount's ``default_encrypted``)
    asks for it (True: the default domain; a string: that domain). Streams are read whole
    (genro-storage's format is one Fernet token)."""
    manager = node._manager
    wanted = manager.mount_default_encrypted(node.mount_name) if encrypted is None else encrypted
    if not wanted:
        return data
    raw = data if isinstance(data, (bytes, bytearray, memoryview)) else data.read()
    return manager.encrypt(bytes(raw), wanted if isinstance(wanted, str) else None)


def opened(node: Any, data: bytes) -> bytes:
    """The plaintext of stored bytes read through ``node`` (plain content unchanged)."""
    if not data.startswith((b"#GNRE1:", b"#STRE1:")):
        return data
    return node._manager.decrypt(data)  # type: ignore[no-any-return]
