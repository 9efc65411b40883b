"""Diff bounds: image pixels checked from the header before decoding, HTML intraline work bounded,
and every diff error a storied error."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib

import pytest

from storied import StorageManager
from storied.diff.image import MAX_PIXELS, diff_images, load_image
from storied.diff.text import decode_text, diff_text
from storied.errors import (
    BinaryContentError,
    InvalidArgumentError,
    InvalidContentError,
    InvalidEncodingError,
    VersionNotFoundError,
)

PIL = pytest.importorskip("PIL.Image")


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGB pixels but holds a tiny IDAT (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png(width: int, height: int, colour: str = "white") -> bytes:
    out = io.BytesIO()
    PIL.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def storage() -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True,
                   "store": f"hard-cli-diffs-{random.random()}"}])
    return sm


# ------------------------------------------------------------------ images
def test_a_huge_declared_image_is_refused_before_decoding() -> None:
    bomb = png_header(12_000, 12_000)  # 144 Mpx declared, a few hundred bytes of file
    assert len(bomb) < 2000
    with pytest.raises(InvalidContentError, match="over the limit") as caught:
        load_image(bomb, "v:big.png@1")
    assert "v:big.png@1" in str(caught.value) and "12000x12000" in str(caught.value)


def test_pillows_own_bomb_error_is_a_storied_error() -> None:
    with pytest.raises(InvalidContentError, match="too large"):
        load_image(png_header(30_000, 30_000), "v:bomb.png@1", max_pixels=None)


def test_the_common_canvas_is_bounded_too() -> None:
    wide, tall = load_image(png(4000, 1), "a"), load_image(png(1, 4000), "b")
    with pytest.raises(InvalidContentError, match="canvas"):
        diff_images(wide, tall, max_pixels=1_000_000)  # 16 Mpx canvas from two 4000 px images
    assert diff_images(wide, tall, max_pixels=None).new_size == (1, 4000)


def test_max_pixels_must_be_a_positive_int() -> None:
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(InvalidArgumentError):
            load_image(png(2, 2), "a", max_pixels=bad)  # type: ignore[arg-type]


def test_node_image_diff_refuses_a_bomb_version(storage: StorageManager) -> None:
    node = storage.node("v:logo.png")
    node.write_bytes(png(8, 8))
    node.write_bytes(png_header(12_000, 12_000))
    with pytest.raises(InvalidContentError, match=r"v:logo\.png@"):
        node.diff_image_versions()
    assert MAX_PIXELS == 50_000_000
    node.write_bytes(png(8, 8, "red"))
    assert node.diff_image_versions(-1, 0).changed_pixels == 64
    with pytest.raises(InvalidContentError):
        node.diff_image_versions(-1, 0, max_pixels=10)


# ------------------------------------------------------------------ HTML text diff
def long_changed_lines(lines: int = 50, width: int = 1990) -> tuple[str, str]:
    rnd = random.Random(8)
    old, new = [], []
    for _ in range(lines):
        chars = [rnd.choice("abcdefghij ") for _ in range(width)]
        old.append("".join(chars) + "\n")
        for k in rnd.sample(range(width), 200):
            chars[k] = rnd.choice("ABCDEFGHIJ")
        new.append("".join(chars) + "\n")
    return "".join(old), "".join(new)


def test_html_diff_of_long_changed_lines_is_bounded() -> None:
    old, new = long_changed_lines()  # 100 KB: 12-20 s before (char matching without a budget)
    started = time.perf_counter()
    page = diff_text(old, new, "html")
    assert time.perf_counter() - started < 2.0
    assert page.count("<del>") >= 50 and page.count("<ins>") >= 50


def test_one_change_in_a_very_long_line_is_highlighted_exactly() -> None:
    # Lines over 2,000 characters were shown without any highlight before.
    old = "x" * 5000 + "alpha" + "y" * 5000 + "\n"
    new = "x" * 5000 + "beta" + "y" * 5000 + "\n"
    page = diff_text(old, new, "html")
    assert "<del>alph</del>" in page or "<del>alpha</del>" in page
    assert "<ins>bet</ins>" in page or "<ins>beta</ins>" in page


def test_short_edits_keep_character_highlights() -> None:
    page = diff_text("port = 80\nhost = a\n", "port = 8080\nhost = b\n", "html")
    assert "port = 80<ins>80</ins>" in page
    assert "host = <del>a</del>" in page and "host = <ins>b</ins>" in page


def test_html_page_markup_is_ascii() -> None:
    page = diff_text("a\n" * 20 + "b\n", "a\n" * 20 + "c\n", "html", old_label="o", new_label="n")
    assert page.isascii()


# ------------------------------------------------------------------ errors of the diff layer
def test_text_diff_errors_are_storied_errors(storage: StorageManager) -> None:
    node = storage.node("v:a.txt")
    node.write_text("one\n")
    node.write_text("two\n")
    with pytest.raises(VersionNotFoundError) as caught:
        node.diff_versions_text(0, 99)
    assert isinstance(caught.value, IndexError)
    with pytest.raises(VersionNotFoundError):
        node.diff_versions_text(0, "no-such-version")
    with pytest.raises(InvalidEncodingError) as bad_codec:
        node.diff_versions_text(encoding="nope")
    assert isinstance(bad_codec.value, LookupError)
    with pytest.raises(InvalidEncodingError):
        node.diff_versions_text(encoding="rot13")  # a codec, but not a text encoding
    with pytest.raises(InvalidArgumentError):
        node.diff_versions_text(format="pdf")
    with pytest.raises(InvalidArgumentError):
        node.diff_versions_text(context_lines=-1)
    with pytest.raises(BinaryContentError):
        decode_text(b"\xff\xfe\xfa", "label")
    with pytest.raises(BinaryContentError):
        decode_text(b"\xff", "label", "idna")  # idna raises UnicodeError, not ...DecodeError


def test_structured_diff_errors_are_storied_errors() -> None:
    from storied.diff.structured import diff_csv, diff_json_bytes

    with pytest.raises(InvalidContentError, match="not valid JSON"):  # ValueError before
        diff_json_bytes(b"[" + b"9" * 5000 + b"]", b"[1]", "v:a.json@1", "v:a.json@2")
    with pytest.raises(InvalidContentError):
        diff_json_bytes(b"[" * 100_000, b"[]", "old", "new")
    with pytest.raises(InvalidArgumentError):  # TypeError before
        diff_csv(io.BytesIO(b"a\n1\n"), io.BytesIO(b"a\n2\n"), 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidEncodingError):  # LookupError before
        diff_csv(io.BytesIO(b"a\n1\n"), io.BytesIO(b"a\n2\n"), "a", encoding="nope")
