"""Real photos that ship inside PyPI packages, cut into 224x224 crops and flips.

scikit-image's `skimage/data` and scikit-learn's `datasets/images` hold a handful of
photographs. The fidelity set and the calibration set come from different photos (no photo
feeds both), each photo giving its centre crop plus seeded random resized crops, half of them
mirrored. Files are read with Pillow straight from the installed packages (no import of
skimage, so none of its optional readers are needed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 224
# Fidelity: objects ImageNet has classes for (cat, espresso, missile, palace, daisy, person).
FIDELITY_PHOTOS = (
    ("skimage", "chelsea.png"),
    ("skimage", "coffee.png"),
    ("skimage", "rocket.jpg"),
    ("skimage", "astronaut.png"),
    ("sklearn", "china.jpg"),
    ("sklearn", "flower.jpg"),
)
# Calibration: every other photo (grey ones as RGB), none shared with the fidelity set.
CALIBRATION_PHOTOS = tuple(
    ("skimage", name)
    for name in (
        "motorcycle_left.png",
        "motorcycle_right.png",
        "retina.jpg",
        "hubble_deep_field.jpg",
        "ihc.png",
        "grass.png",
        "gravel.png",
        "brick.png",
        "camera.png",
        "coins.png",
        "moon.png",
    )
)
PHOTO_FOLDERS = {"skimage": "data", "sklearn": "datasets/images"}
PHOTO_PACKAGES = {"skimage": "scikit-image", "sklearn": "scikit-learn"}


def photo_path(package: str, name: str) -> Path | None:
    """Where an installed package keeps a photo, or None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / PHOTO_FOLDERS[package] / name
    return path if path.is_file() else None


def missing_photos() -> list[str]:
    """Packages whose photos this benchmark needs and cannot find installed."""
    wanted = FIDELITY_PHOTOS + CALIBRATION_PHOTOS
    missing = {pkg for pkg, name in wanted if photo_path(pkg, name) is None}
    return [f"{PHOTO_PACKAGES[pkg]} (photos)" for pkg in sorted(missing)]


def random_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A crop of 20-100% of the area, aspect 3:4 to 4:3, resized to SIZE, mirrored half the time."""
    w, h = image.size
    area = rng.uniform(0.2, 1.0) * w * h
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, round(np.sqrt(area * aspect))))
    ch = int(min(h, round(np.sqrt(area / aspect))))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = image.crop((left, top, left + cw, top + ch)).resize((SIZE, SIZE), Image.BILINEAR)
    return crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def centre_crop(image: Image.Image) -> Image.Image:
    """Shorter side to 256, then the central SIZE x SIZE square (the usual ImageNet eval view)."""
    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    w, h = image.size
    left, top = (w - SIZE) // 2, (h - SIZE) // 2
    return image.crop((left, top, left + SIZE, top + SIZE))


def photo_crops(photos: tuple, count: int, seed: int) -> np.ndarray:
    """`count` RGB crops (uint8, N x SIZE x SIZE x 3) spread evenly over `photos`."""
    rng = np.random.default_rng(seed)
    images = [Image.open(photo_path(pkg, name)).convert("RGB") for pkg, name in photos]
    crops = [centre_crop(image) for image in images]
    while len(crops) < count:
        crops.append(random_crop(images[len(crops) % len(images)], rng))
    return np.stack([np.asarray(crop, dtype=np.uint8) for crop in crops[:count]])


def to_model_input(crops: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 NHWC crops -> float32 NCHW scaled as (pixel - mean) / std."""
    return ((crops.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2).copy()
