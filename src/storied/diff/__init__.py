"""Diffs between two contents: typed change records, and renderers that format them.

* :mod:`storied.diff.text`: line diffs rendered as unified, context or side-by-side HTML.
* :mod:`storied.diff.structured`: semantic JSON, XML (extra ``diff``) and CSV diffs.
* :mod:`storied.diff.image`: visual image diffs (extra ``image``).

The node methods (``node.diff_versions_text`` and friends) read two versions of a file and call
these; the functions here work on any two contents.
"""

from __future__ import annotations

from storied.diff.image import ImageDiff, diff_images, load_image
from storied.diff.model import (
    BinaryContentError,
    Change,
    CsvDiff,
    Hunk,
    InvalidContentError,
    RowChange,
    changes_as_dict,
)
from storied.diff.structured import diff_csv, diff_json, diff_json_bytes, diff_xml
from storied.diff.text import TextDiff, compute_text_diff, decode_text, diff_text

__all__ = [
    "BinaryContentError",
    "Change",
    "CsvDiff",
    "Hunk",
    "ImageDiff",
    "InvalidContentError",
    "RowChange",
    "TextDiff",
    "changes_as_dict",
    "compute_text_diff",
    "decode_text",
    "diff_csv",
    "diff_images",
    "diff_json",
    "diff_json_bytes",
    "diff_text",
    "diff_xml",
    "load_image",
]
