"""Silero VAD's shipped ONNX (PyPI silero-vad 6.2.3, the `real-models` extra) on TFLite: the
sample rate folded in, the LSTM state a batch-first graph input and output, streamed chunk by
chunk with each runtime carrying its own state; speech decisions against onnxruntime running
the shipped graph as it is."""

from __future__ import annotations

import shutil
import subprocess
import wave
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from targets.tflite import TARGET
from targets.tflite.options import TfliteOptions

RATE, CHUNK, CONTEXT = 16000, 512, 64  # Silero v5+: 64 samples of context before each chunk
THRESHOLD = 0.5  # Silero's default speech threshold


def _shipped() -> Path:
    try:
        path = Path(
            metadata.distribution("silero-vad").locate_file("silero_vad/data/silero_vad.onnx")
        )
    except metadata.PackageNotFoundError:
        pytest.skip("silero-vad is not installed (pip install --no-deps silero-vad==6.2.3)")
    if not path.is_file():
        pytest.skip(f"silero-vad has no {path.name}")
    return path


def _rename(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    """Rename tensors in graph and every subgraph (If branches read the state by name)."""
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename(attr.g, renames)


def wrap_batch_first(path: Path) -> onnx.ModelProto:
    """The shipped graph with sr = 16000 folded in and its state [2, batch, 128] exchanged
    batch-first ([1, 2, 128]) through Transposes; input [1, 64 + 512]."""
    model = onnx.load(str(path))
    graph = model.graph
    _rename(graph, {"state": "state_time_major", "stateN": "stateN_time_major"})
    del graph.input[:]
    graph.input.extend(
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, CONTEXT + CHUNK]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 2, 128]),
        ]
    )
    graph.initializer.append(numpy_helper.from_array(np.array(RATE, np.int64), "sr"))
    graph.node.insert(
        0, helper.make_node("Transpose", ["state"], ["state_time_major"], perm=[1, 0, 2])
    )
    graph.node.append(
        helper.make_node("Transpose", ["stateN_time_major"], ["stateN"], perm=[1, 0, 2])
    )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [1, 2, 128]),
        ]
    )
    onnx.checker.check_model(model)
    return model


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Syllables (a jittered glottal pulse train with intonation through three formant
    resonances, a syllable envelope) between pauses of faint noise."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    while sum(map(len, parts)) < seconds * RATE:
        if rng.random() < 0.35:
            parts.append(rng.standard_normal(int(RATE * rng.uniform(0.2, 0.8))) * 0.003)
            continue
        n = int(RATE * rng.uniform(0.12, 0.3))
        f0 = rng.uniform(90, 230) * (1 + 0.15 * np.linspace(-1, 1, n) * rng.choice([-1, 1]))
        phase = np.cumsum(f0 * (1 + 0.01 * rng.standard_normal(n)) / RATE)
        source = (np.diff(np.floor(phase), prepend=0) > 0) + 0.02 * rng.standard_normal(n)
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        formants = ((rng.uniform(300, 900), 80, 1.0), (rng.uniform(900, 2400), 120, 0.5))
        gain = sum(a / (1 + ((freqs - f) / bw) ** 2) for f, bw, a in formants)
        voiced = np.fft.irfft(np.fft.rfft(source) * gain, n)
        envelope = np.sin(np.linspace(0, np.pi, n)) ** 0.5
        parts.append(voiced / (np.abs(voiced).max() + 1e-9) * envelope * rng.uniform(0.2, 0.8))
    return np.concatenate(parts)[: int(seconds * RATE)].astype(np.float32)


def spoken(tmp_path: Path) -> np.ndarray | None:
    """A sentence from espeak-ng (text to speech) resampled to 16 kHz, when it is installed."""
    if shutil.which("espeak-ng") is None:
        return None
    wav = tmp_path / "tts.wav"
    text = "Voice activity detection decides which parts of a recording hold speech."
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    with wave.open(str(wav)) as reader:
        rate = reader.getframerate()
        raw = np.frombuffer(reader.readframes(reader.getnframes()), np.int16) / 32768.0
    times = np.arange(int(len(raw) * RATE / rate)) / RATE
    return np.interp(times, np.arange(len(raw)) / rate, raw).astype(np.float32)


def stream(run, audio: np.ndarray) -> np.ndarray:
    """Speech probability per 512-sample chunk, the state carried from chunk to chunk."""
    state = np.zeros((1, 2, 128), np.float32)
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), audio])
    probs = []
    for start in range(0, len(audio) - CHUNK + 1, CHUNK):
        prob, state = run(padded[None, start : start + CONTEXT + CHUNK], state)
        probs.append(float(np.asarray(prob).reshape(-1)[0]))
    return np.array(probs)


@pytest.fixture(scope="module")
def silero_tflite(tmp_path_factory):
    """(shipped ONNX path, lowered .tflite path, lowering info) for the wrapped model."""
    shipped = _shipped()
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
