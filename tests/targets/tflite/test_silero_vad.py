"""Silero VAD's shipped ONNX (PyPI silero-vad 6.2.3, the `real-models` extra) on TFLite: the
sample rate folded in, the LSTM state a batch-first graph input and output, streamed chunk by
chunk with each runtime carrying its own state; speech decisions against onnxruntime running
the shipped graph as it is."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from benchmarks.tflite_recurrent import (
    RATE,
    THRESHOLD,
    shipped_silero,
    speech_like,
    spoken,
    stream,
    wrap_batch_first,
)
from targets.tflite import TARGET
from targets.tflite.options import TfliteOptions


@pytest.fixture(scope="module")
def silero_tflite(tmp_path_factory):
    """(shipped ONNX path, lowered .tflite path, lowering info) for the wrapped model."""
    shipped = shipped_silero()
    if shipped is None:
        pytest.skip("silero-vad is not installed (pip install --no-deps silero-vad==6.2.3)")
    work = tmp_path_factory.mktemp("silero")
    wrapped = work / "silero_batch_first.onnx"
    onnx.save(wrap_batch_first(shipped), wrapped)
    artifact = TARGET.lower(wrapped, "fp32", work, TfliteOptions())
    return shipped, artifact


@pytest.mark.parametrize("resolver", ["default", "builtin"])
def test_silero_vad_speech_decisions_match_onnxruntime(silero_tflite, resolver, tmp_path):
    shipped, artifact = silero_tflite
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in artifact.info["op_counts"]
    assert any("If node(s) folded" in note for note in artifact.info["notes"])
    session = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"])

    def reference(chunk, state):
        feeds = {"input": chunk, "state": state.transpose(1, 0, 2), "sr": np.array(RATE)}
        prob, state_n = session.run(None, feeds)
        return prob, state_n.transpose(1, 0, 2)

    runner = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver))

    def lowered(chunk, state):
        out = runner.run({"input": chunk, "state": state})
        return out["output"], out["stateN"]

    audio = [speech_like(12, seed=5)]
    audio += [a for a in [spoken(tmp_path)] if a is not None]
    audio = np.concatenate(audio)
    want, got = stream(reference, audio), stream(lowered, audio)
    speech = want > THRESHOLD
    assert 0 < speech.sum() < len(speech), "the audio must hold both speech and non-speech"
    assert np.mean((got > THRESHOLD) == speech) >= 0.99
    assert np.abs(got - want).max() < 1e-3
