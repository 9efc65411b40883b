"""Virtual nodes: content computed from other nodes at read time (genro-storage compatible)."""

from __future__ import annotations

import difflib
import io
import zipfile
from typing import TYPE_CHECKING, Any

from storied import paths
from storied.core.node import StorageNode
from storied.core.streams import decode_error
from storied.core.writing import check_encoding
from storied.errors import BinaryContentError, InvalidArgumentError

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["DiffNode", "IterNode", "zip_nodes"]


class _VirtualNode(StorageNode):
    """A node with no mount: it cannot be written, and ``exists()`` is False."""

    def __init__(self, manager: StorageManager) -> None:
        super().__init__(manager, None, "")

    @property
    def fullpath(self) -> str:
        return "None:"

    def exists(self) -> bool:
        return False

    def _refuse(self, *args: Any, **kwargs: Any) -> bool:
        raise InvalidArgumentError("Cannot write to virtual node (no path)")

    def write_bytes(self, *args: Any, **kwargs: Any) -> bool:
        """Refused: a virtual node has no path (InvalidArgumentError)."""
        return self._refuse()

    def write_text(self, *args: Any, **kwargs: Any) -> bool:
        """Refused: a virtual node has no path (InvalidArgumentError)."""
        return self._refuse()

    def write(self, *args: Any, **kwargs: Any) -> bool:
        """Refused: a virtual node has no path (InvalidArgumentError)."""
        return self._refuse()

    def read_text(self, encoding: str = "utf-8", errors: str | None = None) -> str:
        codec = check_encoding(encoding)
        try:
            return self.read_bytes().decode(codec, errors or "strict")
        except UnicodeDecodeError as exc:
            raise decode_error(exc, self.fullpath) from None

    def copy_to(self, dest: StorageNode | str, **options: Any) -> StorageNode:
        target = self._resolve_dest(dest)
        target.write_bytes(self.read_bytes())
        return target

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


class IterNode(_VirtualNode):
    """The concatenation of its sources, read lazily."""

    def __init__(self, manager: StorageManager, nodes: list[StorageNode]) -> None:
        super().__init__(manager)
        self.nodes = nodes

    def append(self, node: StorageNode) -> None:
        """Add one source at the end."""
        self.nodes.append(node)

    def extend(self, *nodes: StorageNode) -> None:
        """Add several sources at the end."""
        self.nodes.extend(nodes)

    def read_bytes(self) -> bytes:
        return b"".join(n.read_bytes() for n in self.nodes)

    def zip(self) -> bytes:
        """A ZIP archive with one entry per source, named by its basename."""
        return zip_nodes(self.nodes)


class DiffNode(_VirtualNode):
    """The unified diff of two text nodes (empty when identical)."""

    left: StorageNode
    right: StorageNode

    def __init__(self, manager: StorageManager, left: StorageNode, right: StorageNode) -> None:
        super().__init__(manager)
        self.left, self.right = left, right

    def read_bytes(self) -> bytes:
        return self.read_text().encode("utf-8")

    def read_text(self, encoding: str = "utf-8", errors: str | None = None) -> str:
        texts = []
        for node in (self.left, self.right):
            raw = node.read_bytes()
            try:
                if b"\x00" in raw:
                    raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
                texts.append(raw.decode(check_encoding(encoding)))
            except UnicodeDecodeError:
                raise BinaryContentError(f"Cannot diff binary files ({node.fullpath})") from None
        lines = difflib.unified_diff(
            texts[0].splitlines(keepends=True),
            texts[1].splitlines(keepends=True),
            fromfile=self.left.fullpath,
            tofile=self.right.fullpath,
        )
        return "".join(lines)


def zip_nodes(nodes: list[StorageNode], dir_prefix: bool = True) -> bytes:
    """Zip files (by basename) and directories (recursively, by path relative to the
    directory, below the directory's own name when ``dir_prefix``: an iternode's sources
    stay apart; a mount root, which has no name, never gets a prefix)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for node in nodes:
            if node.mount_name is not None and node.is_dir():
                prefix = f"{node.basename}/" if dir_prefix and node.basename else ""
                for entry in node._be.walk(node.path):
                    rel = paths.relative_to(entry.path, node.path)
                    archive.writestr(prefix + rel, node._be.read_bytes(entry.path))
            else:
                archive.writestr(node.basename or "data", node.read_bytes())
    return buffer.getvalue()
