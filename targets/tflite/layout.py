"""Layout propagation: each ONNX tensor lives in TFLite as a permutation of its ONNX layout.

A Layout says how the TFLite tensor relates to the ONNX one: `perm` (TFLite = ONNX transposed
by perm, e.g. NCHW→NHWC is (0, 2, 3, 1)) and, after flattening an NHWC tensor, `cols` (the
last axis holds ONNX columns in that order). Consumers absorb a layout (permuted weights,
remapped axes) instead of transposing back; only what cannot absorb it gets a TRANSPOSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NHWC = (0, 2, 3, 1)


@dataclass(frozen=True)
class Layout:
    """How a TFLite tensor's axes (and flattened columns) map to its ONNX tensor."""

    perm: tuple[int, ...] | None = None
    cols: tuple[int, ...] | None = None

    @property
    def is_plain(self) -> bool:
        """True when the TFLite tensor is exactly the ONNX tensor."""
        return self.perm is None and self.cols is None

    def axis(self, onnx_axis: int, rank: int) -> int:
        """The TFLite axis that holds ONNX axis onnx_axis."""
        onnx_axis %= rank
        return onnx_axis if self.perm is None else self.perm.index(onnx_axis)

    def shape(self, onnx_shape: tuple) -> tuple:
        """The TFLite shape of a tensor whose ONNX shape is onnx_shape."""
        if self.perm is None:
            return tuple(onnx_shape)
        return tuple(onnx_shape[p] for p in self.perm)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Lay out a constant of the same rank the way this layout lays out tensors."""
        if self.perm is not None:
            array = array.transpose(self.perm)
        if self.cols is not None and array.shape[-1] > 1:
            array = array[..., list(self.cols)]
        return np.ascontiguousarray(array)


PLAIN = Layout()


def layout_for_rank(rank: int) -> Layout:
    """The channels-last layout of a rank-4 activation (plain for other ranks)."""
    return Layout(NHWC) if rank == 4 else PLAIN


def after_transpose(layout: Layout, onnx_perm: tuple[int, ...]) -> Layout:
    """Layout of ONNX Transpose(x, onnx_perm)'s output when it reuses x's TFLite tensor."""
    inverse = tuple(int(i) for i in np.argsort(onnx_perm))
    current = layout.perm or tuple(range(len(onnx_perm)))
    perm = tuple(inverse[current[i]] for i in range(len(onnx_perm)))
    return PLAIN if perm == tuple(range(len(perm))) else Layout(perm)


def transpose_perm(src: Layout, dst: Layout, rank: int) -> tuple[int, ...]:
    """The TRANSPOSE perm that turns a tensor laid out as src into dst (no cols)."""
    identity = tuple(range(rank))
    src_perm, dst_perm = src.perm or identity, dst.perm or identity
    inverse_src = np.argsort(src_perm)
    return tuple(int(inverse_src[dst_perm[i]]) for i in range(rank))


def flatten_cols(onnx_shape: tuple, layout: Layout) -> tuple[int, ...] | None:
    """Column order after flattening an ONNX [N, ...] tensor laid out as layout (None: same)."""
    inner = tuple(int(d) for d in onnx_shape[1:])
    if layout.perm is None or sum(d > 1 for d in inner) <= 1:
        return None
    index = np.arange(int(np.prod(inner))).reshape(inner)
    rest = [p - 1 for p in layout.perm[1:]]
    cols = tuple(int(i) for i in index.transpose(rest).reshape(-1))
    return None if cols == tuple(range(len(cols))) else cols


def reduce_layout(layout: Layout, axes: tuple[int, ...], rank: int, keepdims: bool) -> Layout:
    """Layout of a reduction's output over ONNX axes (kept dims keep their places)."""
    if keepdims or layout.perm is None:
        return layout if keepdims else PLAIN
    kept = [p for p in layout.perm if p not in axes]
    renumber = {old: new for new, old in enumerate(sorted(kept))}
    perm = tuple(renumber[p] for p in kept)
    return PLAIN if perm == tuple(range(len(perm))) else Layout(perm)


def keeps_order(onnx_shape: tuple, layout: Layout) -> bool:
    """True when the TFLite tensor's flat element order equals the ONNX one (unit dims moved)."""
    if layout.cols is not None:
        return False
    if layout.perm is None:
        return True
    moving = [p for p in layout.perm if onnx_shape[p] != 1]
    return moving == sorted(moving)
