"""Storage optimisation: duplicate detection and deduplication."""

from storied.optimize.dedup import DuplicateGroup, find_duplicates

__all__ = ["DuplicateGroup", "find_duplicates"]
