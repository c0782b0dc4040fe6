"""Image decoding for the featurizer: file on disk -> uint8 (S, S, 3) centre crop, cheaply.

Decoding competes with the network for the same CPU cores, so it does the least work that yields
the backbone's evaluation transform (resize shorter side, centre crop):
- large JPEGs are decoded at reduced scale (Pillow's draft mode: DCT scaling inside libjpeg, 1/2 to
  1/8), which turns a 12-megapixel phone photo into a ~1 ms decode;
- JPEGs too small for draft mode to help go through torchvision's libjpeg-turbo decoder and its
  SIMD uint8 antialiased resize, about twice as fast as Pillow's decode + resize here;
- everything else (PNG, WebP, CMYK, palette, 16-bit, ...) goes through Pillow, cropping and
  resizing in a single resampling pass.
Any failure raises; the featurizer turns it into a per-file error.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from worker import storage

__all__ = [
    "crop_box",
    "crop_resize_chw",
    "decode_jpegs_on_device",
    "decode_rgb_crop",
    "exif_orientation",
    "is_jpeg",
    "load_rgb_crop",
    "read_bytes",
]


def _image_ops():
    """torchvision's libjpeg-turbo / nvJPEG ops, or None where the build lacks them.

    Called as ops because the public wrappers warn (DeprecationWarning) on every call since
    torchvision 0.29; if a future release drops the ops, Pillow decodes everything.
    """
    try:
        import torchvision.io.image as tv_image

        if not tv_image._has_image_ops():
            return None
        return torch.ops.image
    except Exception:  # noqa: BLE001 - any problem means "not available"
        return None


_OPS = _image_ops()
_RGB = ImageReadMode.RGB.value
_TV_INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def crop_box(width: int, height: int, resize_size: int, input_size: int) -> tuple[float, ...]:
    """Source box equal to "resize shorter side to resize_size, then centre-crop input_size".

    Doing it as one box-resize avoids materialising the intermediate resized image.
    """
    side = min(width, height) * input_size / resize_size
    left = (width - side) / 2.0
    top = (height - side) / 2.0
    return (left, top, left + side, top + side)


def read_bytes(path: str | os.PathLike[str]) -> bytearray:
    """The image's bytes (a path or a storage URL) in a writable buffer (torch.frombuffer wants
    one)."""
    return bytearray(storage.read_bytes(path))


def crop_resize_chw(
    img: torch.Tensor, input_size: int, resize_size: int, interpolation: str = "bilinear"
) -> torch.Tensor:
    """uint8 (3, H, W) -> (3, S, S): centre crop + antialiased resize, on img's device."""
    h, w = int(img.shape[-2]), int(img.shape[-1])
    side = max(1, round(min(h, w) * input_size / resize_size))
    top, left = (h - side) // 2, (w - side) // 2
    img = img[..., top : top + side, left : left + side]
    return TF.resize(
        img,
        [input_size, input_size],
        interpolation=_TV_INTERPOLATION[interpolation],
        antialias=True,
    )


def load_rgb_crop(
    path: str | os.PathLike[str],
    input_size: int,
    resize_size: int,
    interpolation: str = "bilinear",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode `path` into a (input_size, input_size, 3) uint8 array (written into `out` if given).

    Raises on unreadable / corrupt / truncated files (the caller records the error per file).
    """
    return decode_rgb_crop(read_bytes(path), input_size, resize_size, interpolation, out)


def decode_rgb_crop(
    data: bytearray,
    input_size: int,
    resize_size: int,
    interpolation: str = "bilinear",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Like load_rgb_crop, from the file's bytes already in memory."""
    if _OPS is not None and _small_jpeg(data, resize_size):
        try:
            img = _OPS.decode_jpeg(torch.frombuffer(data, dtype=torch.uint8), _RGB, True)
            small = crop_resize_chw(img, input_size, resize_size, interpolation)
        except RuntimeError:
            pass  # let Pillow decode it, or produce the error message
        else:
            hwc = small.permute(1, 2, 0)
            if out is None:
                return hwc.numpy().copy()
            torch.from_numpy(out).copy_(hwc)
            return out
    return _load_with_pillow(io.BytesIO(data), input_size, resize_size, interpolation, out)


def is_jpeg(data: bytearray | bytes) -> bool:
    """JPEG by its magic bytes (the file name is not trusted)."""
    return data[:3] == b"\xff\xd8\xff"


def decode_jpegs_on_device(datas: list[bytearray], device: torch.device) -> list[torch.Tensor]:
    """Batched JPEG decode on the GPU (nvJPEG): uint8 (3, H, W) tensors on `device`.

    Raises if any image fails; the caller then retries one by one to isolate the bad file.
    EXIF orientation is not applied here, so the caller sends only unrotated JPEGs.
    """
    if _OPS is None:
        raise RuntimeError("torchvision image ops are unavailable")
    tensors = [torch.frombuffer(d, dtype=torch.uint8) for d in datas]
    if device.type != "cuda":  # same contract on CPU, so the path is testable without a GPU
        return [_OPS.decode_jpeg(t, _RGB, False) for t in tensors]
    return list(_OPS.decode_jpegs_cuda(tensors, _RGB, device))


def exif_orientation(data: bytearray | bytes) -> int:
    """The JPEG's EXIF orientation (1 = upright) from its APP1 segment, without decoding."""
    i, n = 2, min(len(data), 1 << 16)
    while i + 4 < n and data[i] == 0xFF:
        marker = data[i + 1]
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
            exif = Image.Exif()
            try:
                exif.load(bytes(data[i + 10 : i + 2 + length]))
            except Exception:  # noqa: BLE001 - unreadable EXIF: treat as upright
                return 1
            return int(exif.get(_ORIENTATION_TAG, 1) or 1)
        if marker == 0xDA:  # start of scan: no more headers
            break
        i += 2 + length
    return 1


def _small_jpeg(data: bytearray, resize_size: int) -> bool:
    """A baseline RGB/grey JPEG too small for draft mode to shrink: torchvision decodes it faster."""
    if not is_jpeg(data):
        return False
    size = _jpeg_size(data)
    if size is None:
        return False
    (w, h), components = size
    return components in (1, 3) and min(w, h) < 2 * resize_size


def _jpeg_size(data: bytearray) -> tuple[tuple[int, int], int] | None:
    """((width, height), components) from the JPEG's SOF marker, without decoding anything."""
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h = (data[i + 5] << 8) | data[i + 6]
            w = (data[i + 7] << 8) | data[i + 8]
            return (w, h), data[i + 9]
        i += 2 + length
    return None


def _load_with_pillow(
    source: io.BytesIO,
    input_size: int,
    resize_size: int,
    interpolation: str,
    out: np.ndarray | None,
) -> np.ndarray:
    with warnings.catch_warnings():
        # Huge images are still images to label; the bomb check only protects untrusted servers.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(source) as im:
            orientation = 1
            if im.format in ("JPEG", "MPO"):
                orientation = im.getexif().get(_ORIENTATION_TAG, 1)
                # Decode at the smallest 1/2, 1/4, 1/8 scale that still covers the target size.
                im.draft("RGB", (resize_size, resize_size))
            elif im.format in ("PNG", "WEBP", "TIFF"):
                orientation = im.getexif().get(_ORIENTATION_TAG, 1)
            if im.mode != "RGB":
                im = _to_rgb(im)
            box = crop_box(im.width, im.height, resize_size, input_size)
            small = im.resize(
                (input_size, input_size), _RESAMPLE[interpolation], box=box, reducing_gap=3.0
            )
    if orientation not in (1, None):
        # The crop is a centred square, so rotating after cropping equals cropping the rotated
        # photo, and it is much cheaper on the small image.
        method = _TRANSPOSE.get(orientation)
        if method is not None:
            small = small.transpose(method)
    arr = np.asarray(small)
    if out is None:
        return arr.copy() if not arr.flags.writeable else arr
    out[...] = arr
    return out


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any mode to RGB; transparent pixels go on white, as a viewer would show them."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / float greyscale: scale to 8 bits instead of clipping everything to white.
        a = np.asarray(im, dtype=np.float32)
        hi = float(a.max()) or 1.0
        return Image.fromarray((a * (255.0 / hi)).clip(0, 255).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")
