"""Visual diff of two images: a similarity score, a perceptual-hash distance and a picture of the
changed pixels.

Needs the optional extra ``image`` (Pillow and imagehash); without it every function raises
:class:`~storied.errors.MissingDependencyError` saying ``pip install 'storied[image]'``.

Size limit: decoding an image takes memory in proportion to its pixels, not its file size (a
140 KB PNG can hold 12000x12000 pixels and cost gigabytes to diff). Every function takes
``max_pixels`` (default :data:`MAX_PIXELS`, 50 megapixels; None for no limit of ours) and
checks it against the dimensions in the file's header **before** decoding anything, and
against the common canvas of the two images; beyond it, or when Pillow's own
decompression-bomb guard trips, the result is :class:`~storied.errors.InvalidContentError`.
A diff within the limit holds roughly 30 bytes per canvas pixel at its peak.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any, cast

from storied.diff.model import InvalidContentError
from storied.errors import InvalidArgumentError, MissingDependencyError

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MAX_PIXELS", "ImageDiff", "diff_images", "load_image"]

MAX_PIXELS = 50_000_000
"""Default bound on an image's (and the diff canvas's) width x height, in pixels."""

HIGHLIGHT = (255, 0, 64)
"""The colour of changed pixels in :attr:`ImageDiff.image`."""


@dataclass(frozen=True)
class ImageDiff:
    """How two images differ.

    Attributes:
        similarity: In [0, 1]; 1.0 exactly when every pixel is equal. It is one minus the mean
            absolute difference of the RGBA channels, both images placed at the top-left of a
            canvas as large as the larger of them (so a size change lowers it).
        hash_distance: Hamming distance between the images' perceptual hashes (``imagehash``'s
            pHash, 64 bits): 0 for images that look alike, larger the more they differ, whatever
            their sizes.
        image: An RGB picture of the new image, faded, with every changed pixel painted
            :data:`HIGHLIGHT` (on the common canvas).
        changed_pixels: How many canvas pixels differ in any channel.
        bbox: ``(left, top, right, bottom)`` of the changed pixels, None when there is none.
        old_size: ``(width, height)`` of the old image.
        new_size: ``(width, height)`` of the new image.
    """

    similarity: float
    hash_distance: int
    image: Image
    changed_pixels: int
    bbox: tuple[int, int, int, int] | None
    old_size: tuple[int, int]
    new_size: tuple[int, int]

    @property
    def identical(self) -> bool:
        """True when every pixel is equal (and the sizes too)."""
        return self.changed_pixels == 0 and self.old_size == self.new_size

    def summary(self) -> dict[str, Any]:
        """The numbers as a JSON-ready dict (everything but the image)."""
        return {
            "similarity": self.similarity,
            "hash_distance": self.hash_distance,
            "changed_pixels": self.changed_pixels,
            "bbox": list(self.bbox) if self.bbox else None,
            "old_size": list(self.old_size),
            "new_size": list(self.new_size),
        }


def _modules() -> tuple[Any, Any, Any]:
    try:
        import imagehash
        from PIL import Image as PILImage
        from PIL import ImageChops
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"image diffs need Pillow and imagehash ({exc.name!r} is missing): "
            "pip install 'storied[image]'"
        ) from exc
    return PILImage, ImageChops, imagehash


def _check_pixels(size: tuple[int, int], max_pixels: int | None, what: str) -> None:
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise InvalidContentError(
            f"{what} is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels, over the limit of "
            f"{max_pixels:,} (pass a larger max_pixels= to diff it)"
        )


def _valid_limit(max_pixels: int | None) -> int | None:
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1
    ):
        raise InvalidArgumentError(f"max_pixels must be an int >= 1 or None, not {max_pixels!r}")
    return max_pixels


def load_image(data: bytes, label: str, max_pixels: int | None = MAX_PIXELS) -> Image:
    """Decode an image (its first frame) fully into memory.

    The dimensions are read from the header first: an image of more than ``max_pixels`` pixels
    is refused before any pixel is decoded.

    Raises:
        InvalidContentError: Not an image Pillow can read, or too large (over ``max_pixels``,
            or a decompression bomb by Pillow's own measure); the message names ``label``.
        InvalidArgumentError: ``max_pixels`` is not an int >= 1 or None.
        MissingDependencyError: Pillow is not installed.
    """
    pil, _, _ = _modules()
    limit = _valid_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # Pillow warns past ~89 Mpx; the size is checked here against max_pixels instead.
            warnings.simplefilter("ignore", pil.DecompressionBombWarning)
            with pil.open(io.BytesIO(data)) as img:
                _check_pixels(img.size, limit, label)
                img.load()
                return cast("Image", img.copy())
    except pil.DecompressionBombError as exc:
        raise InvalidContentError(f"{label} is too large to decode: {exc}") from exc
    except (pil.UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InvalidContentError):
            raise
        raise InvalidContentError(f"{label} is not a readable image: {exc}") from exc


def _on_canvas(img: Image, size: tuple[int, int]) -> Image:
    pil, _, _ = _modules()
    rgba = img.convert("RGBA")
    if rgba.size == size:
        return rgba
    canvas = pil.new("RGBA", size, (0, 0, 0, 0))
    canvas.paste(rgba, (0, 0))
    return cast("Image", canvas)


def _highlight(new: Image, mask: Image) -> Image:
    pil, _, _ = _modules()
    faded = pil.blend(new.convert("L").convert("RGB"), pil.new("RGB", new.size, "white"), 0.6)
    faded.paste(pil.new("RGB", new.size, HIGHLIGHT), (0, 0), mask)
    return cast("Image", faded)


def diff_images(old: Image, new: Image, max_pixels: int | None = MAX_PIXELS) -> ImageDiff:
    """Compare two Pillow images of any modes and sizes (see :class:`ImageDiff`).

    Raises:
        InvalidContentError: The common canvas (the larger width by the larger height) is over
            ``max_pixels``.
    """
    _, chops, imagehash = _modules()
    size = (max(old.width, new.width), max(old.height, new.height))
    _check_pixels(size, _valid_limit(max_pixels), "the canvas of the two images")
    distance = int(imagehash.phash(old.convert("RGB")) - imagehash.phash(new.convert("RGB")))
    b = _on_canvas(new, size)
    delta = chops.difference(_on_canvas(old, size), b)  # the old canvas is freed at once
    # delta.histogram() is 4 x 256 counts (R, G, B, A): the sum of all differences, no copy.
    total = sum((i % 256) * n for i, n in enumerate(delta.histogram()))
    mask = reduce(chops.lighter, delta.split()).point(lambda v: 255 if v else 0)
    del delta
    changed = mask.histogram()[255]
    pixels = size[0] * size[1]
    similarity = 1.0 - total / (255 * 4 * pixels) if pixels else 1.0
    return ImageDiff(
        similarity=1.0 if not changed else min(similarity, 1.0 - 1e-12),
        hash_distance=distance,
        image=_highlight(b, mask),
        changed_pixels=changed,
        bbox=mask.getbbox(),
        old_size=old.size,
        new_size=new.size,
    )
