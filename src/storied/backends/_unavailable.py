"""The backend of a mount whose optional dependency is missing.

``configure()`` accepts such a mount (its config fully type-checked) so that a shared config
with, say, a GCS mount still works on a machine without ``gcsfs`` for every other mount; the
mount's first operation raises :class:`~storied.errors.MissingDependencyError` (also a
``ModuleNotFoundError``) naming the extra to install (``pip install 'storied[gcs]'``).
"""

from __future__ import annotations

import builtins
from collections.abc import Hashable, Iterator
from typing import BinaryIO, NoReturn

from storied.backends.base import Backend
from storied.errors import MissingDependencyError
from storied.info import Data, Info, ObjectVersion, WriteMode

__all__ = ["UnavailableBackend", "missing_message"]


def missing_message(what: str, module: str | None, extra: str | None) -> str:
    """``"<what> needs 'module': pip install 'storied[extra]'"`` (the one wording)."""
    hint = f"pip install 'storied[{extra}]'" if extra else "reinstall storied"
    return f"{what} needs {module or 'an optional package'!r}: {hint}"


class UnavailableBackend(Backend):
    """Every operation raises :class:`MissingDependencyError` (see the module doc).

    Args:
        type_name: The mount type (``gcs``).
        mount: The mount's name.
        module: The module that could not be imported.
        extra: The pip extra that installs it.
        detail: The adapter's own message, used instead of the standard one.
    """

    def __init__(self, type_name: str, mount: str, module: str | None,
                 extra: str | None, detail: str | None = None) -> None:
        self.protocol = type_name
        self.mount, self.module, self.extra = mount, module, extra
        self.message = missing_message(f"Mount {mount!r} of type {type_name!r}", module, extra)
        if detail:  # the adapter's own explanation (a C library that is missing...)
            self.message = f"Mount {mount!r} of type {type_name!r}: {detail}"

    def _fail(self) -> NoReturn:
        raise MissingDependencyError(self.message, name=self.module)

    def storage_key(self) -> Hashable:
        return ("unavailable", self.protocol, self.mount)

    def info(self, path: str) -> Info:
        self._fail()

    def list(self, path: str) -> Iterator[Info]:
        self._fail()

    def walk(self, path: str) -> Iterator[Info]:
        self._fail()

    def exists(self, path: str) -> bool:
        self._fail()

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        self._fail()

    def read_bytes(self, path: str) -> bytes:
        self._fail()

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        self._fail()

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._fail()

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        self._fail()

    def copy(self, src: str, dst: str) -> Info:
        self._fail()

    def move(self, src: str, dst: str) -> None:
        self._fail()

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        self._fail()

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        self._fail()
