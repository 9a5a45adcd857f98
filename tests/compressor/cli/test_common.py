"""compressor/cli/common.py: errors printed as they were written."""

from __future__ import annotations

import numpy as np


def test_error_text_with_brackets_is_printed_verbatim(example, tmp_path, cli):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 1, 9, 9), np.float32))
    result = cli([example["model"], "--eval", tmp_path / "d.npz", "-o", tmp_path / "o"])
    assert result.exit_code == 2
    assert "[samples, ...]" in result.output and "[1, 8, 8]" in result.output
