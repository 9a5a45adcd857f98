"""Image preprocessing for image-folder data: resize, centre crop, channel order, scale, mean/std
normalisation and layout, as the model was trained with (--preprocess).

`mean=0.485,0.456,0.406,std=0.229,0.224,0.225,resize=256,crop=224,layout=NCHW,channels=RGB`:
values after a key up to the next `key=` belong to it. mean and std apply to pixels scaled to
[0, 1] (scale=1, the default) or kept in [0, 255] (scale=255).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from foundation.errors import UsageError

LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")
KEYS = ("mean", "std", "resize", "crop", "layout", "channels", "scale")
MAX_SIDE = 16384  # resize/crop sides: far above any model input, far below what exhausts memory
# Pixels one resized image may have before its crop (PIL's own decompression-bomb bound).
MAX_RESIZED_PIXELS = 89_478_485


@dataclass(frozen=True)
class Preprocess:
    """How image files become model input arrays; the default is the plain [0, 1] NCHW RGB."""

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    resize: tuple[int, ...] = ()  # () = straight to the model size; (S,) = shorter side; (H, W)
    crop: tuple[int, ...] = ()  # centre crop (S,) or (H, W) after resizing
    layout: str = "NCHW"
    channels: str = "RGB"
    scale: float = 1.0  # 1: pixels / 255; 255: raw pixel values

    def to_text(self) -> str:
        """The --preprocess text that parses back to this value."""
        parts = []
        for key, value in asdict(self).items():
            if isinstance(value, tuple):
                if value:
                    parts.append(f"{key}={','.join(_num(v) for v in value)}")
            else:
                parts.append(f"{key}={_num(value)}")
        return ",".join(parts)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_preprocess(text: str | None) -> Preprocess | None:
    """Parse `key=v[,v...],key=v...`; None for no text."""
    if not text:
        return None
    values: dict[str, list[str]] = {}
    key = None
    for token in (t.strip() for t in text.split(",")):
        name, sep, value = token.partition("=")
        if sep:
            key = name.strip().lower()
            if key not in KEYS:
                raise UsageError(f"--preprocess has unknown key '{key}'; keys: {', '.join(KEYS)}.")
            values[key] = [value.strip()]
        elif key is None or not token:
            raise UsageError(f"--preprocess '{text}' must look like mean=0.5,std=0.5,crop=224.")
        else:
            values[key].append(token)
    try:
        return _build(values)
    except ValueError as exc:
        raise UsageError(f"--preprocess '{text}': {exc}") from exc


def _build(values: dict[str, list[str]]) -> Preprocess:
    fields: dict = {}
    for key in ("mean", "std"):
        if key in values:
            fields[key] = tuple(float(v) for v in values[key])
    for key in ("resize", "crop"):
        if key in values:
            fields[key] = tuple(int(v) for v in "x".join(values[key]).lower().split("x"))
            if len(fields[key]) > 2 or min(fields[key]) < 1 or max(fields[key]) > MAX_SIDE:
                raise ValueError(f"{key} takes SIZE or HxW with sizes from 1 to {MAX_SIDE}")
    for key, allowed in (("layout", LAYOUTS), ("channels", CHANNEL_ORDERS)):
        if key in values:
            fields[key] = "".join(values[key]).upper()
            if fields[key] not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}")
    if "scale" in values:
        fields["scale"] = float(values["scale"][0])
        if fields["scale"] not in (1.0, 255.0):
            raise ValueError("scale must be 1 (pixels in [0, 1]) or 255 (raw pixels)")
    if 0.0 in fields.get("std", ()):
        raise ValueError("std values must not be 0")
    return Preprocess(**fields)


def image_size(shape: tuple, prep: Preprocess) -> tuple[int, int, int]:
    """(channels, height, width) of a model input shape [N, C, H, W] or [N, H, W, C]."""
    if prep.layout == "NHWC":
        return shape[3], shape[1], shape[2]
    return shape[1], shape[2], shape[3]


def prepare_image(
    img: object, channels: int, size: tuple[int, int] | None, prep: Preprocess
) -> np.ndarray:
    """A PIL image as one model input array (C, H, W) or (H, W, C); size None (a model with
    dynamic height and width) keeps the size resize and crop give."""
    img = img.convert("L" if channels == 1 else "RGB")
    img = _resize(img, size, prep)
    arr = np.asarray(img, dtype=np.float32)
    arr = arr[..., None] if arr.ndim == 2 else arr
    if prep.channels == "BGR" and channels == 3:
        arr = arr[..., ::-1]
    arr = arr / (255.0 / prep.scale)
    for key in ("mean", "std"):
        if len(getattr(prep, key)) not in (1, channels):
            raise UsageError(
                f"--preprocess {key} has {len(getattr(prep, key))} values; the model's images "
                f"have {channels} channel(s): give 1 or {channels}."
            )
    arr = (arr - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(arr if prep.layout == "NHWC" else arr.transpose(2, 0, 1))


def _resized_size(
    have: tuple[int, int], model: tuple[int, int], prep: Preprocess
) -> tuple[int, int]:
    """(width, height) the resize step gives, refused before resizing when it is a pixel bomb
    (resize=16384 on an 8x1000 image would be 2 billion pixels)."""
    if not prep.resize:
        new = model
    elif len(prep.resize) == 1:
        ratio = prep.resize[0] / min(have)
        new = (max(1, round(have[0] * ratio)), max(1, round(have[1] * ratio)))
    else:
        new = (prep.resize[1], prep.resize[0])
    if new[0] * new[1] > MAX_RESIZED_PIXELS:
        raise UsageError(
            f"--preprocess resize={'x'.join(map(str, prep.resize))} makes {have[1]}x{have[0]} "
            f"images {new[1]}x{new[0]}, more than {MAX_RESIZED_PIXELS:,} pixels; resize to "
            "about the model's input size."
        )
    return new


def _resize(img: object, size: tuple[int, int] | None, prep: Preprocess) -> object:
    """Resize (shorter side or exact), then centre-crop; the result is `size` (H, W)."""
    height, width = size or (0, 0)
    img = img.resize(_resized_size(img.size, (width, height), prep))
    crop = prep.crop or ((height, width) if prep.resize and size else ())
    if crop:
        ch, cw = (crop[0], crop[0]) if len(crop) == 1 else crop
        w, h = img.size
        if ch > h or cw > w:
            raise UsageError(
                f"--preprocess crops {ch}x{cw} from {h}x{w} images; resize them to at least "
                "the crop size."
            )
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
    if size and img.size != (width, height):
        raise UsageError(
            f"--preprocess makes {img.size[1]}x{img.size[0]} images but the model takes "
            f"{height}x{width}; set crop={height}x{width} (or resize to it)."
        )
    return img
