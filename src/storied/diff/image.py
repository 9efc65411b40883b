"""Visual diff of two images: a similarity score, a perceptual-hash distance and a picture of the
changed pixels.

Needs the optional extra ``image`` (Pillow and imagehash); without it every function raises
:class:`~storied.errors.MissingDependencyError` saying ``pip install 'storied[image]'``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

from storied.diff.model import InvalidContentError
from storied.errors import MissingDependencyError

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["ImageDiff", "diff_images", "load_image"]

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


def load_image(data: bytes, label: str) -> Image:
    """Decode an image (its first frame) fully into memory.

    Raises:
        InvalidContentError: Not an image Pillow can read; the message names ``label``.
        MissingDependencyError: Pillow is not installed.
    """
    pil, _, _ = _modules()
    try:
        with pil.open(io.BytesIO(data)) as img:
            img.load()
            return img.copy()
    except (pil.UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidContentError(f"{label} is not a readable image: {exc}") from exc


def _on_canvas(img: Image, size: tuple[int, int]) -> Image:
    pil, _, _ = _modules()
    rgba = img.convert("RGBA")
    if rgba.size == size:
        return rgba
    canvas = pil.new("RGBA", size, (0, 0, 0, 0))
    canvas.paste(rgba, (0, 0))
    return canvas


def _highlight(new: Image, mask: Image) -> Image:
    pil, _, _ = _modules()
    faded = pil.blend(new.convert("L").convert("RGB"), pil.new("RGB", new.size, "white"), 0.6)
    faded.paste(pil.new("RGB", new.size, HIGHLIGHT), (0, 0), mask)
    return faded


def diff_images(old: Image, new: Image) -> ImageDiff:
    """Compare two Pillow images of any modes and sizes (see :class:`ImageDiff`)."""
    _, chops, imagehash = _modules()
    size = (max(old.width, new.width), max(old.height, new.height))
    a, b = _on_canvas(old, size), _on_canvas(new, size)
    delta = chops.difference(a, b)
    per_pixel = reduce(chops.lighter, delta.split())
    mask = per_pixel.point(lambda v: 255 if v else 0)
    changed = mask.histogram()[255]
    total = sum(sum(i * n for i, n in enumerate(band.histogram())) for band in delta.split())
    pixels = size[0] * size[1]
    similarity = 1.0 - total / (255 * 4 * pixels) if pixels else 1.0
    distance = int(imagehash.phash(old.convert("RGB")) - imagehash.phash(new.convert("RGB")))
    return ImageDiff(
        similarity=1.0 if not changed else min(similarity, 1.0 - 1e-12),
        hash_distance=distance,
        image=_highlight(b, mask),
        changed_pixels=changed,
        bbox=mask.getbbox(),
        old_size=old.size,
        new_size=new.size,
    )
