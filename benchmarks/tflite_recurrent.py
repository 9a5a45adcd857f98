"""Benchmark: recurrent layers on TFLite — the LSTM's two forms, and Silero VAD streamed.

python -m benchmarks.tflite_recurrent [--runs 300] [--seconds 20]

1. A zero-state LSTM lowered as UNIDIRECTIONAL_SEQUENCE_LSTM (`-O lstm=auto`; its state is a
   variable tensor the runner resets each run) and unrolled (`-O lstm=unrolled`), p50 at
   batch 1, 1 thread, timed interleaved on both resolvers, same run.
2. Silero VAD's shipped ONNX (silero-vad 6.2.3, the `real-models` extra; skipped when absent)
   wrapped with its state batch-first and the sample rate folded in, lowered fp32, streamed
   chunk by chunk (each runtime carries its own state) over speech-like synthetic audio and,
   when espeak-ng is installed, a spoken sentence: speech decisions (p > 0.5) equal to
   onnxruntime on the shipped graph, max |p diff|, ms per chunk.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import wave
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RATE, CHUNK, CONTEXT = 16000, 512, 64  # Silero v5+: 64 samples of context before each chunk
THRESHOLD = 0.5  # Silero's default speech threshold
LSTM_SHAPES = ((1, 128, 128), (8, 64, 64), (28, 28, 64), (100, 40, 128))  # seq, in, hidden


def shipped_silero() -> Path | None:
    """silero_vad.onnx as the silero-vad wheel ships it (None when it is not installed)."""
    try:
        dist = metadata.distribution("silero-vad")
    except metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file("silero_vad/data/silero_vad.onnx"))
    return path if path.is_file() else None


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


def lstm_model(seq: int, features: int, hidden: int) -> onnx.ModelProto:
    """One forward LSTM with a zero initial state: x [seq, 1, features] → Y, Y_h."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
        for name, shape in (
            ("W", (1, 4 * hidden, features)),
            ("R", (1, 4 * hidden, hidden)),
            ("B", (1, 8 * hidden)),
        )
    ]
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["y", "yh"], hidden_size=hidden)
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, 1, features])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "yh")],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def time_interleaved(runners: dict, feeds: dict, runs: int) -> dict[str, float]:
    """p50 ms of each runner, the runners taking turns so load hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(runs):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.run(feeds)
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


def bench_lstm_forms(work: Path, runs: int) -> None:
    """Builtin UNIDIRECTIONAL_SEQUENCE_LSTM vs unrolled steps, both resolvers."""
    from targets.tflite import TARGET
    from targets.tflite.options import TfliteOptions

    print("| seq, in, hidden | resolver | LSTM op ms | unrolled ms | unrolled speed-up |")
    print("|---|---|---|---|---|")
    for seq, features, hidden in LSTM_SHAPES:
        path = work / f"lstm_{seq}.onnx"
        onnx.save(lstm_model(seq, features, hidden), path)
        files = {
            form: TARGET.lower(path, "fp32", work / f"{seq}_{form}", TfliteOptions(lstm=form)).path
            for form in ("auto", "unrolled")
        }
        feeds = {"x": np.random.default_rng(1).standard_normal((seq, 1, features), np.float32)}
        for resolver in ("default", "builtin"):
            options = TfliteOptions(resolver=resolver)
            runners = {form: TARGET.open_runner(f, 1, options) for form, f in files.items()}
            p50 = time_interleaved(runners, feeds, runs)
            print(
                f"| {seq}, {features}, {hidden} | {resolver} | {p50['auto']:.4f} | "
                f"{p50['unrolled']:.4f} | {p50['auto'] / p50['unrolled']:.2f}x |"
            )


def bench_silero(work: Path, seconds: float) -> None:
    """Silero VAD on TFLite (both resolvers) against onnxruntime on the shipped graph."""
    import onnxruntime as ort

    from targets.tflite import TARGET
    from targets.tflite.options import TfliteOptions

    shipped = shipped_silero()
    if shipped is None:
        print("silero-vad is not installed: pip install --no-deps silero-vad==6.2.3")
        return
    wrapped = work / "silero_batch_first.onnx"
    onnx.save(wrap_batch_first(shipped), wrapped)
    started = time.perf_counter()
    artifact = TARGET.lower(wrapped, "fp32", work / "silero", TfliteOptions())
    print(
        f"\nSilero VAD lowered in {time.perf_counter() - started:.2f} s: {artifact.info['op_counts']}"
    )
    audio = [speech_like(seconds, seed=5)] + [a for a in [spoken(work)] if a is not None]
    audio = np.concatenate(audio)
    session = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"])

    def reference(chunk, state):
        feeds = {"input": chunk, "state": state.transpose(1, 0, 2), "sr": np.array(RATE)}
        prob, state_n = session.run(None, feeds)
        return prob, state_n.transpose(1, 0, 2)

    started = time.perf_counter()
    want = stream(reference, audio)
    ort_ms = (time.perf_counter() - started) / len(want) * 1e3
    print(
        f"{len(want)} chunks, {np.mean(want > THRESHOLD):.1%} speech by onnxruntime "
        f"({ort_ms:.3f} ms/chunk)"
    )
    for resolver in ("default", "builtin"):
        runner = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver))

        def lowered(chunk, state, runner=runner):
            out = runner.run({"input": chunk, "state": state})
            return out["output"], out["stateN"]

        started = time.perf_counter()
        got = stream(lowered, audio)
        ms = (time.perf_counter() - started) / len(got) * 1e3
        agree = np.mean((got > THRESHOLD) == (want > THRESHOLD))
        print(
            f"tflite {resolver}: decisions equal {agree:.2%}, max |p diff| "
            f"{np.abs(got - want).max():.2e}, {ms:.3f} ms/chunk"
        )


def main() -> None:
    """Print both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed runs per LSTM file")
    parser.add_argument("--seconds", type=float, default=20.0, help="synthetic audio length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_lstm_forms(Path(tmp), args.runs)
        bench_silero(Path(tmp), args.seconds)


if __name__ == "__main__":
    main()
