"""Read datasets from .npz files, image folders, Python entry points or the bundled example."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from calibration.dataset import Dataset
from calibration.layout import DataLayout, split_arrays
from calibration.npz_headers import check_npz_headers
from calibration.preprocess import Preprocess, image_size, prepare_image
from calibration.varied import VariedDataset, stack_samples
from foundation.entry_points import import_entry_point
from foundation.errors import DataError
from foundation.resources import check_tensor_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm")
LABEL_KEYS = ("labels", "label", "y")


def load_dataset(
    spec: str,
    input_shapes: dict[str, tuple] | None = None,
    layout: DataLayout | None = None,
    preprocess: Preprocess | None = None,
) -> Dataset:
    """Open a dataset from a path (.npz or image folder) or an entry point `pkg.module:function`.

    input_shapes (name -> shape with batch) lets image folders be resized to the model's input;
    layout says where samples lie in arrays that are not samples-first (calibration/layout.py);
    preprocess says how image files become arrays (calibration/preprocess.py).
    """
    path = Path(spec)
    if path.suffix == ".npz" or path.is_file():
        return load_npz(path, layout)
    if path.is_dir():
        return load_image_folder(path, input_shapes or {}, preprocess)
    if ":" in spec and not path.exists():
        return load_entry_point(spec, layout)
    raise DataError(
        f"Data '{spec}' does not exist. Pass an .npz file, a folder of images, "
        "or a Python entry point 'package.module:function'."
    )


def load_npz(path: Path, layout: DataLayout | None = None) -> Dataset:
    """Arrays keyed by model input name (or 'input'), optional 'labels', samples first (or
    along the batch axis the layout gives), 0-d arrays shared by all samples."""
    if not path.exists():
        raise DataError(f"Data file '{path}' does not exist.")
    if not path.is_file():  # a FIFO would block the run forever
        raise DataError(f"Data file '{path}' is not a regular file (a pipe or device?).")
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
    return _dataset(arrays, labels, str(path), layout)


def _dataset(
    arrays: dict[str, np.ndarray], labels: np.ndarray | None, source: str, layout: DataLayout | None
) -> Dataset:
    """A Dataset of per-sample and shared arrays, as the layout places them."""
    batched, shared = split_arrays(arrays, layout, source)
    if not batched:
        raise DataError(
            f"{source}: every array is a constant (0-d or whole-shaped); at least one input "
            "needs samples along its batch axis."
        )
    axes = (layout or DataLayout()).batch_axes
    return Dataset(batched, labels, source, shared, {k: v for k, v in axes.items() if k in batched})


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


def load_image_folder(
    path: Path, input_shapes: dict[str, tuple], preprocess: Preprocess | None = None
) -> Dataset:
    """Images preprocessed as --preprocess says (default: resized, scaled to [0, 1], NCHW RGB);
    class sub-folders (sorted) become integer labels."""
    from PIL import Image, UnidentifiedImageError

    prep = preprocess or Preprocess()
    if len(input_shapes) > 1:
        raise DataError("Image folders feed single-input models only; use an .npz for this model.")
    name, shape = next(iter(input_shapes.items())) if input_shapes else ("input", None)
    channels, height, width = image_size(shape, prep) if shape and len(shape) == 4 else (0, 0, 0)
    known = all(isinstance(d, int) for d in (height, width))
    if (
        shape is None
        or len(shape) != 4
        or not isinstance(channels, int)
        or not (known or prep.resize)
    ):
        example = "1x224x224x3" if prep.layout == "NHWC" else "1x3x224x224"
        raise DataError(
            f"Image folder '{path}' needs the model's input shape ({prep.layout}) to resize "
            f"images; give it with --input-shape NAME:{example}, or for a model with dynamic "
            "height and width, --preprocess resize=S (shorter side) or resize=HxW."
        )
    if channels not in (1, 3):
        raise DataError(
            f"Image folder '{path}': the model input {list(shape)} has {channels} channels in "
            f"{prep.layout} layout; images give 1 or 3. Check --preprocess layout=NCHW|NHWC."
        )
    files = _image_files(path)
    size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    largest = size or (max(prep.crop or prep.resize),) * 2
    check_tensor_bytes(
        f"Image folder '{path}'", (len(files), channels, *largest), 4, "Use fewer images."
    )
    arrays = []
    for file, _ in files:
        try:
            with Image.open(file) as img:
                arrays.append(prepare_image(img, channels, size, prep))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise DataError(f"Image '{file}' could not be decoded: {exc}") from None
    has_labels = any(label is not None for _, label in files)
    labels = np.array([lbl for _, lbl in files], np.int64) if has_labels else None
    groups = stack_samples({name: arrays}, str(path))
    if len(groups) == 1:
        return Dataset(groups[0], labels, source=str(path))
    return VariedDataset.of([Dataset(g, None, str(path)) for g in groups], str(path))


def _image_files(path: Path) -> list[tuple[Path, int | None]]:
    """Image files with their class index (sorted sub-folders), or None without sub-folders."""
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    files: list[tuple[Path, int | None]] = []
    if classes:
        for index, cls in enumerate(classes):
            files += [(f, index) for f in sorted((path / cls).iterdir()) if _is_image(f)]
    else:
        files = [(f, None) for f in sorted(path.iterdir()) if _is_image(f)]
    if not files:
        raise DataError(f"Image folder '{path}' holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def load_entry_point(spec: str, layout: DataLayout | None = None) -> Dataset:
    """Call `pkg.module:function`; it returns samples (dicts, arrays or (inputs, label) pairs)."""
    func = import_entry_point(spec, DataError, "Data entry point")
    try:
        return samples_to_dataset(func(), source=spec, layout=layout)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"Data entry point '{spec}' failed: {type(exc).__name__}: {exc}") from exc


def samples_to_dataset(samples: object, source: str, layout: DataLayout | None = None) -> Dataset:
    """Stack an iterable of samples (or pass through a Dataset / dict of stacked arrays)."""
    if isinstance(samples, Dataset):
        return samples
    if isinstance(samples, dict):
        arrays = {k: np.asarray(v) for k, v in samples.items()}
        labels = _pop_labels(arrays, source)
        return _dataset(arrays, labels, source, layout)
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
    if len({len(v) for v in columns.values()}) > 1:
        raise DataError(f"{source}: some samples lack some inputs; give every input each time.")
    n = len(next(iter(columns.values())))
    if labels and len(labels) != n:
        raise DataError(f"{source}: only some samples carry labels; label all or none.")
    label_array = None
    if labels:
        label_array = _pop_labels({"labels": np.asarray(labels)}, source)
    groups = stack_samples(columns, source)
    if len(groups) == 1:
        return Dataset(groups[0], label_array, source)
    if label_array is not None:
        raise DataError(
            f"{source}: labelled samples must share one shape (they are evaluation data); "
            "samples of several sizes calibrate only."
        )
    return VariedDataset.of([Dataset(g, None, source) for g in groups], source)


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
