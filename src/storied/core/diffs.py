"""Version diff methods of StorageNode (filled in by the diff work)."""

from __future__ import annotations


class DiffMethods:
    """Mixed into ``StorageNode``."""
