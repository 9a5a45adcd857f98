"""A calibration-data entry point that SIGKILLs the process running it the first time it is
called (the marker file in $SWEEP_KILL_MARKER records that it did): a job killed mid-run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from calibration.loaders import load_npz


def calib() -> object:
    marker = Path(os.environ["SWEEP_KILL_MARKER"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return load_npz(Path(os.environ["SWEEP_KILL_CALIB"]))
