"""Safe image decoding: every image the project reads (CLI, training, app) goes through `load_image`.

Every file is untrusted: the format is detected from the bytes (the extension is ignored), only
raster formats Pillow decodes natively are opened, the pixel count is checked before decoding
(decompression bombs), and any decoder failure becomes one `ImageError` naming the file.
Animated images give their first frame, EXIF orientation is applied, 16-bit images are scaled
to 8 bits, and transparency is composited on white.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import threading
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dance.errors import ImageError

ImageSource = Union[str, Path, bytes]

MAX_BYTES = 50 * 1024 * 1024  # larger files are refused before decoding
MAX_PIXELS = 64_000_000  # ~8000x8000; bounds decode time and memory (decompression bombs)
LARGE_PIXELS = 16_000_000  # decodes above this take hundreds of MB each ...
_large_decodes = threading.BoundedSemaphore(2)  # ... so at most two run at once (many users, many huge uploads)
MAX_ASPECT = 16  # longer side at most this many times the side after `resize_shorter` (photos are < 3)
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")  # file endings for uploaders and folders
_FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF"}
ACCEPTED_TEXT = ", ".join(_FORMAT_NAMES[f] for f in ALLOWED_FORMATS[:-1]) + f" or {_FORMAT_NAMES[ALLOWED_FORMATS[-1]]}"

# Set once at import rather than with warnings.catch_warnings() around each decode: catch_warnings
# swaps process-global state and is not thread-safe (the app decodes from many threads at once).
# Pillow's bomb warning is redundant (MAX_PIXELS below is stricter and raises ImageError), and its
# "corrupt EXIF" style warnings would only clutter the CLI's output.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def _read_bytes(source: ImageSource, name: str, max_bytes: int) -> bytes:
    """Return the raw bytes of a path or bytes source, refusing empty or oversized files."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            if not path.is_file():
                raise ImageError(f"{name}: file not found.")
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageError(f"{name}: file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit.")
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)  # a file growing after stat() is still bounded
        except (OSError, ValueError) as exc:
            raise ImageError(f"{name}: file cannot be read ({getattr(exc, 'strerror', None) or exc}).") from None
    if not data:
        raise ImageError(f"{name}: file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageError(f"{name}: file is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit.")
    return data


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow's own conversion clips 16-bit values; scale the real range to 0..255 instead.
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "RGBa", "La", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba)  # over white, without alpha_composite's two extra full-size RGBA copies
        return out
    return img.convert("RGB") if img.mode != "RGB" else img


def load_image(source: ImageSource, name: str | None = None, max_bytes: int = MAX_BYTES,
               min_side: int | None = None) -> Image.Image:
    """Decode a path or bytes into an upright RGB image, or raise ImageError naming the file.

    `min_side`: the shorter side the caller needs at least; a JPEG is then decoded at the smallest DCT scale
    (1/2, 1/4, 1/8) that still gives it (Pillow's draft mode: a 12 MP photo decodes several times faster).
    """
    name = name or (str(source) if not isinstance(source, (bytes, bytearray)) else "upload")
    data = _read_bytes(source, name, max_bytes)
    try:
        img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)  # animated files open on their first frame
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageError(f"{name}: image has no pixels.")
        if width * height > MAX_PIXELS:
            raise ImageError(
                f"{name}: image is {width}x{height} pixels, over the {MAX_PIXELS // 1_000_000} megapixel limit."
            )
        if min_side and img.format == "JPEG" and min(width, height) >= 2 * min_side:
            scale = min_side / min(width, height)
            img.draft(None, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
        with _large_decodes if width * height > LARGE_PIXELS else contextlib.nullcontext():
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a supported image (expected {ACCEPTED_TEXT}).") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{name}: image declares too many pixels (possible decompression bomb).") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise ImageError(f"{name}: image is truncated or corrupt ({_short(exc)}).") from None
    except (MemoryError, OverflowError):
        raise ImageError(f"{name}: image is too large to decode.") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes reach C decoders; no failure may escape untyped
        raise ImageError(f"{name}: image cannot be decoded ({type(exc).__name__}: {_short(exc)}).") from None


def _short(exc: BaseException) -> str:
    """A short, single-line description of a decoder exception."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    """Downscale so the shorter side is at most `side` and the longer at most `side * MAX_ASPECT` (never upscale).

    The cap bounds every later resize whatever the file's shape: a 1 x 1,000,000 strip would otherwise keep its
    million pixels and be squashed to the model's input through a side x 1,000,000 float intermediate (GBs).
    """
    width, height = img.size
    scale = min(side / min(width, height), side * MAX_ASPECT / max(width, height))
    if scale >= 1:
        return img
    return img.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BICUBIC)
