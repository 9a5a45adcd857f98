"""Run every model in a folder on onnxruntime's optimized kernels (ORT_ENABLE_ALL); save outputs.

`python run_kernels.py FOLDER`: for each NAME.onnx with NAME.npz inputs, writes NAME.out.npy.
Standalone (numpy and onnxruntime only) so it can run under qemu-x86_64 -cpu Haswell.
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

folder = Path(sys.argv[1])
for path in sorted(folder.glob("*.onnx")):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = dict(np.load(path.with_suffix(".npz")))
    np.save(path.with_suffix(".out.npy"), session.run(None, feeds)[0])
