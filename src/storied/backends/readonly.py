"""The base of backends that can only be read (archives, git, GitHub).

Every write-side method of the contract raises the :class:`~storied.errors.StoragePermissionError`
that :meth:`ReadOnlyBackend._refuse` builds, naming the storage and the refused action, so no
read-only adapter repeats the refusals.
"""

from __future__ import annotations

from storied.backends.base import Backend
from storied.errors import StoragePermissionError
from storied.info import Data, Info, WriteMode

__all__ = ["ReadOnlyBackend"]


class ReadOnlyBackend(Backend):
    """A backend whose storage cannot be written: subclasses implement the read methods and
    may override :meth:`_refuse` to name their storage."""

    def _refuse(self, action: str) -> StoragePermissionError:
        """The error for ``action`` (``"write 'a.txt'"``...) on this read-only storage."""
        return StoragePermissionError(f"{self.protocol} mount is read-only: cannot {action}")

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        raise self._refuse(f"write {path!r}")

    def delete(self, path: str, *, recursive: bool = False) -> None:
        raise self._refuse(f"delete {path!r}")

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        raise self._refuse(f"create directory {path!r}")

    def copy(self, src: str, dst: str) -> Info:
        raise self._refuse(f"copy to {dst!r}")

    def move(self, src: str, dst: str) -> None:
        raise self._refuse(f"move {src!r}")

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        raise self._refuse(f"set metadata on {path!r}")
