"""Pull weight pairs in with the least output error: GPTQ-style rounding under pair limits.

Pulling a pair's weights in to |w1| + |w2| = 128 changes the layer's output by the removed
weight times its input; inputs are correlated (neighbouring pixels, similar channels), so
the rest of the channel's weights can take most of that change back. Given the second moment
H = E[x x^T] of the layer's input (in the weight row's order), weights are rounded one pair
at a time in the kernel's pair order, each rounding error spread over the weights not yet
rounded through the Cholesky factor of H^-1 (GPTQ, Frantar et al. 2022), with the pair limit
applied as each pair is rounded. Written by hand: GPTQ libraries target GPU LLM weights and
know no pair limit.
"""

from __future__ import annotations

import numpy as np

from targets.arithmetic.layers import QLayer, conv_pads, transposed_input

PAIR_LIMIT = 128
DAMPING = 0.01  # of the mean diagonal, added to H so it inverts (GPTQ's default)
MAX_ROW = 4096  # longer rows (K) are left to the rescale fix: the update is O(K^2) per channel
MAX_SAMPLES = 20000  # rows of im2col inputs kept per batch for H


def input_moment(layer: QLayer, x: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(sum of x x^T over im2col rows, row count) for the layer's float input x, [K, K] in
    the weight row's order (one group's, all groups' rows summed); None when K is too long."""
    cols = _im2col(layer, x)
    if cols is None or cols.shape[1] > MAX_ROW:
        return None
    if len(cols) > MAX_SAMPLES:
        cols = cols[np.random.default_rng(0).choice(len(cols), MAX_SAMPLES, replace=False)]
    cols = cols.astype(np.float64)
    return cols.T @ cols, len(cols)


def _im2col(layer: QLayer, x: np.ndarray) -> np.ndarray | None:
    """[rows, K] layer inputs as the weight row reads them ((c, taps) for a Conv group)."""
    node = layer.node
    if node.op_type != "Conv":
        return x.T if transposed_input(node) else x.reshape(-1, x.shape[-1])
    out_ch, cin_g, *kernel = layer.weight.shape
    dims = len(kernel)
    attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
    pads = conv_pads(node, tuple(kernel), x.shape[2:])
    strides, dilations = attrs.get("strides", [1] * dims), attrs.get("dilations", [1] * dims)
    padded = np.pad(x, [(0, 0), (0, 0), *zip(pads[:dims], pads[dims:], strict=True)])
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True)]
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=tuple(range(2, 2 + dims)))
    picks = tuple(slice(None, None, s) for s in strides) + tuple(
        slice(None, None, d) for d in dilations
    )
    windows = windows[(slice(None), slice(None), *picks)]  # [N, C, *out, *kernel]
    groups = layer.groups
    n, c = windows.shape[:2]
    out = windows.shape[2 : 2 + dims]
    grouped = windows.reshape(n, groups, cin_g, int(np.prod(out)), int(np.prod(kernel)))
    # rows: (sample, group, position); columns: (channel in group, tap) as OIHW flattens.
    return grouped.transpose(0, 1, 3, 2, 4).reshape(-1, cin_g * int(np.prod(kernel)))


def round_with_pair_limit(values: np.ndarray, moment: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Integer rows near `values` ([C, K], in steps of each channel's scale) whose same-sign
    pairs stay within 128, rounding errors compensated through H = `moment` ([K, K])."""
    k = values.shape[1]
    h = moment + DAMPING * np.mean(np.diag(moment)) * np.eye(k) + 1e-12 * np.eye(k)
    order = pairs[pairs >= 0]
    h = h[np.ix_(order, order)]
    upper = np.linalg.cholesky(np.linalg.inv(h)).T  # GPTQ's upper factor of H^-1
    w = values[:, order].astype(np.float64).copy()
    q = np.zeros_like(w)
    position = 0
    for first, second in pairs:
        width = 1 + (first >= 0 and second >= 0)
        for step in range(width):
            i = position + step
            q[:, i] = _round_member(w, q, i, step, position, width)
            error = (w[:, i] - q[:, i]) / upper[i, i]
            w[:, i + 1 :] -= np.outer(error, upper[i, i + 1 :])
        position += width
    rows = np.zeros_like(values, dtype=np.float64)
    rows[:, order] = q
    return rows


def _round_member(w: np.ndarray, q: np.ndarray, i: int, step: int, start: int, width: int):
    """Round pair member i: the first looks ahead and pulls the pair in when it would pass
    128, the second takes what the first left."""
    rounded = np.clip(np.rint(w[:, i]), -127, 127)
    if width == 1:
        return rounded
    if step == 0:
        partner = np.clip(np.rint(w[:, i + 1]), -127, 127)
        over = (rounded * partner > 0) & (np.abs(rounded + partner) > PAIR_LIMIT)
        excess = np.abs(w[:, i]) + np.abs(w[:, i + 1]) - PAIR_LIMIT
        pulled = np.sign(rounded) * np.clip(np.rint(np.abs(w[:, i]) - excess / 2), 1, 127)
        return np.where(over, pulled, rounded)
    partner = q[:, start]
    room = PAIR_LIMIT - np.abs(partner)
    over = (rounded * partner > 0) & (np.abs(rounded) > room)
    return np.where(over, np.sign(rounded) * room, rounded)
