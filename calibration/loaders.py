"""Read datasets from .npz files, image folders, Python entry points or the bundled example."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from calibration.dataset import Dataset
from calibration.npz_headers import check_npz_headers
from compressor.entry_points import import_entry_point
from compressor.errors import DataError
from compressor.limits import check_tensor_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm")
LABEL_KEYS = ("labels", "label", "y")


def load_dataset(spec: str, input_shapes: dict[str, tuple] | None = None) -> Dataset:
    """Open a dataset from a path (.npz or image folder) or an entry point `pkg.module:function`.

    input_shapes (name -> shape with batch) lets image folders be resized to the model's input.
    """
    path = Path(spec)
    if path.suffix == ".npz" or path.is_file():
        return load_npz(path)
    if path.is_dir():
        return load_image_folder(path, input_shapes or {})
    if ":" in spec and not path.exists():
        return load_entry_point(spec)
    raise DataError(
        f"Data '{spec}' does not exist. Pass an .npz file, a folder of images, "
        "or a Python entry point 'package.module:function'."
    )


def load_npz(path: Path) -> Dataset:
    """Arrays keyed by model input name (or 'input'), optional 'labels', samples first."""
    if not path.exists():
        raise DataError(f"Data file '{path}' does not exist.")
    if path.suffix != ".npz":
        raise DataError(f"Data file '{path}' is not an .npz archive; save arrays with numpy.savez.")
    check_npz_headers(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"Data file '{path}' could not be read as .npz ({exc}). Re-create it with numpy.savez."
        ) from exc
    labels = _pop_labels(arrays, str(path))
    if not arrays:
        raise DataError(f"Data file '{path}' holds no input arrays (only labels or nothing).")
    return Dataset(arrays, labels, source=str(path))


def _pop_labels(arrays: dict[str, np.ndarray], source: str) -> np.ndarray | None:
    """Remove and return the integer class labels stored under a label key, if any."""
    key = next((k for k in LABEL_KEYS if k in arrays), None)
    if key is None:
        return None
    labels = np.asarray(arrays.pop(key)).reshape(-1)
    if labels.dtype.kind not in "iub" and not (
        labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0)
    ):
        raise DataError(
            f"{source}: '{key}' must hold integer class indices, not {labels.dtype} values."
        )
    if labels.size and labels.min() < 0:
        raise DataError(f"{source}: '{key}' holds negative class indices.")
    return labels.astype(np.int64)


def load_image_folder(path: Path, input_shapes: dict[str, tuple]) -> Dataset:
    """Images scaled to [0, 1] in NCHW; class sub-folders (sorted) become integer labels."""
    from PIL import Image, UnidentifiedImageError

    if len(input_shapes) > 1:
        raise DataError("Image folders feed single-input models only; use an .npz for this model.")
    name, shape = next(iter(input_shapes.items())) if input_shapes else ("input", None)
    if shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        raise DataError(
            f"Image folder '{path}' needs the model's input shape [N, C, H, W] to resize images; "
            "give it with --input-shape NAME:1x3x224x224."
        )
    channels, height, width = shape[1:]
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    files: list[tuple[Path, int | None]] = []
    if classes:
        for index, cls in enumerate(classes):
            files += [(f, index) for f in sorted((path / cls).iterdir()) if _is_image(f)]
    else:
        files = [(f, None) for f in sorted(path.iterdir()) if _is_image(f)]
    if not files:
        raise DataError(f"Image folder '{path}' holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    check_tensor_bytes(
        f"Image folder '{path}'", (len(files), channels, height, width), 4, "Use fewer images."
    )
    arrays = []
    for file, _ in files:
        try:
            with Image.open(file) as img:
                img = img.convert("L" if channels == 1 else "RGB").resize((width, height))
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise DataError(f"Image '{file}' could not be decoded: {exc}") from None
        arrays.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
    labels = np.array([lbl for _, lbl in files], np.int64) if classes else None
    return Dataset({name: np.stack(arrays)}, labels, source=str(path))


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def load_entry_point(spec: str) -> Dataset:
    """Call `pkg.module:function`; it returns samples (dicts, arrays or (inputs, label) pairs)."""
    func = import_entry_point(spec, DataError, "Data entry point")
    try:
        return samples_to_dataset(func(), source=spec)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"Data entry point '{spec}' failed: {type(exc).__name__}: {exc}") from exc


def samples_to_dataset(samples: object, source: str) -> Dataset:
    """Stack an iterable of samples (or pass through a Dataset / dict of stacked arrays)."""
    if isinstance(samples, Dataset):
        return samples
    if isinstance(samples, dict):
        arrays = {k: np.asarray(v) for k, v in samples.items()}
        labels = _pop_labels(arrays, source)
        return Dataset(arrays, labels, source)
    if not isinstance(samples, Iterable):
        raise DataError(f"{source} returned {type(samples).__name__}, not an iterable of samples.")
    columns: dict[str, list[np.ndarray]] = {}
    labels: list[int] = []
    for item in samples:
        inputs, label = _split_sample(item, source)
        if not isinstance(inputs, dict):
            inputs = {"input": inputs}
        for key, value in inputs.items():
            columns.setdefault(key, []).append(np.asarray(value))
        if label is not None:
            labels.append(label)
    if not columns:
        raise DataError(f"{source} yielded no samples.")
    stacked = {}
    for key, values in columns.items():
        try:
            stacked[key] = np.stack(values)
        except ValueError as exc:
            raise DataError(f"{source}: samples of '{key}' differ in shape ({exc}).") from exc
    n = len(next(iter(stacked.values())))
    if labels and len(labels) != n:
        raise DataError(f"{source}: only some samples carry labels; label all or none.")
    label_array = None
    if labels:
        label_array = _pop_labels({"labels": np.asarray(labels)}, source)
    return Dataset(stacked, label_array, source)


def _split_sample(item: object, source: str) -> tuple[object, object]:
    """A sample is inputs, or (inputs, label) where the label is a scalar class index."""
    if isinstance(item, tuple) and len(item) == 2 and np.ndim(item[1]) == 0:
        return item
    if isinstance(item, (tuple, list)):
        raise DataError(
            f"{source} yielded a {len(item)}-item tuple. Yield a dict {{input_name: array}} "
            "for several inputs, or (inputs, label) with a scalar label."
        )
    return item, None
