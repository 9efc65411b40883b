"""The manager's at-rest encryption methods (genro-storage 0.8.4's names), see
:mod:`storied.crypto` for the formats."""

from __future__ import annotations

from storied.crypto import Keyring, MissingKeyError

__all__ = ["EncryptionMethods"]


class EncryptionMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""

    _keyring: Keyring | None = None
    _default_encrypted: dict[str, bool | str] | None = None

    def set_encryption_keys(self, keys: str) -> None:
        """Install key material: ``'<key>'``, ``'<new>,<old>'`` (rotation: the first key of a
        domain encrypts, all decrypt) or ``'acme:<k1>,partner:<k2>'`` (per domain). Replaces
        what was installed.

        Raises:
            StorageConfigError: No key, a malformed key, or an invalid domain name.
        """
        self._keyring = Keyring(keys)

    @property
    def encryption_active(self) -> bool:
        """True when key material is installed (the keys themselves stay private)."""
        return self._keyring is not None

    @property
    def encryption_domains(self) -> list[str]:
        """The domains with installed keys, in declaration order."""
        return self._keyring.domains if self._keyring is not None else []

    def mount_default_encrypted(self, name: str | None) -> bool | str:
        """The mount's ``default_encrypted`` (what a write that says nothing uses); a relative
        mount has its own or none (the parent's does not leak through)."""
        table = self._default_encrypted or {}
        return table.get(name, False) if name else False

    def set_mount_default_encrypted(self, name: str, value: bool | str) -> None:
        """Set a mount's ``default_encrypted`` (the config key of the same name does this)."""
        if self._default_encrypted is None:
            self._default_encrypted = {}
        self._default_encrypted[name] = value

    def keyring(self) -> Keyring:
        """The installed keys, or :class:`~storied.crypto.MissingKeyError`."""
        if self._keyring is None:
            raise MissingKeyError(
                "No encryption keys installed (StorageManager.set_encryption_keys)")
        return self._keyring

    def encrypt(self, data: bytes, domain: str | None = None) -> bytes:
        """``data`` in the genro-compatible ``#GNRE1`` envelope of ``domain``."""
        return self.keyring().encrypt(data, domain)

    def decrypt(self, data: bytes) -> bytes:
        """The plaintext of an envelope; plain content passes through untouched."""
        if self._keyring is None:
            from storied.crypto import split_header

            prefix, domain, _ = split_header(data)
            if prefix is not None:
                raise MissingKeyError(
                    f"Content is encrypted for domain {domain!r} and no keys are installed")
            return data
        return self._keyring.decrypt(data)
