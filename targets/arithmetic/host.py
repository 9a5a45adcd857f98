"""The host CPU's int8 features, read from the OS's own report, and the arithmetic they mean."""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from foundation.errors import UsageError
from targets.arithmetic.probe import probe_arithmetic
from targets.arithmetic.profiles import (
    ARITHMETICS,
    AVX2_PAIRS,
    EXACT,
    PROFILE_CHOICES,
    PROFILES,
    CpuProfile,
    Int8Arithmetic,
)

# The int8 features that decide onnxruntime's kernels, by the OS's spelling of them.
X86_FEATURES = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
ARM_FEATURES = ("asimddp", "i8mm")
# macOS spells them differently: sysctl key or cpuid word → our name.
MACOS_NAMES = {
    "AVX2": "avx2",
    "AVX512F": "avx512f",
    "AVX512BW": "avx512bw",
    "AVX512VNNI": "avx512_vnni",
    "AVXVNNI": "avx_vnni",
    "AMX_INT8": "amx_int8",
    "hw.optional.arm.FEAT_DotProd": "asimddp",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
}
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
# x86 features with which onnxruntime's U8S8 kernels sum in int32 (VNNI dot products, AMX).
X86_EXACT = ("avx512_vnni", "avx_vnni", "amx_int8")
# x86 features whose U8S8 kernels use VPMADDUBSW (saturating int16 pairs) when no VNNI.
X86_PAIRS = ("avx2", "avx512bw")


@dataclass(frozen=True)
class HostCpu:
    """What this machine's CPU offers for int8, and where that was read from."""

    arch: str = field(metadata={"help": "x86_64, arm64, or the machine name when other"})
    features: tuple[str, ...] = field(default=(), metadata={"help": "int8 features found"})
    source: str = field(default="", metadata={"help": "where they were read, or 'unknown'"})
    measured: str = field(
        default="",
        metadata={"help": "the arithmetic onnxruntime's kernels showed in a probe ('': none)"},
    )

    @property
    def known(self) -> bool:
        """Whether the features were read (else the arithmetic is not known)."""
        return self.source != "unknown"

    @property
    def arithmetic(self) -> Int8Arithmetic | None:
        """The arithmetic onnxruntime's U8S8 kernels use here (the probe's when it ran, which
        CPUID masking cannot fool); None when it cannot be told."""
        if self.measured:
            return ARITHMETICS[self.measured]
        if self.arch == "arm64":
            return EXACT
        if self.arch != "x86_64" or not self.known:
            return None
        if any(f in self.features for f in X86_EXACT):
            return EXACT
        if any(f in self.features for f in X86_PAIRS):
            return AVX2_PAIRS
        return EXACT  # SSE4.1 kernels widen to int16 and sum in int32

    @property
    def profile_name(self) -> str:
        """The CpuProfile this CPU belongs to (`portable` when it cannot be told)."""
        arithmetic = self.arithmetic
        if arithmetic is None:
            return "portable"
        if self.arch == "arm64":
            return "arm64"
        return "x86-avx2" if arithmetic.pair_saturation else "x86-vnni"

    def to_dict(self) -> dict:
        """The report's record of the host."""
        arithmetic = self.arithmetic
        return {
            "arch": self.arch,
            "int8_features": list(self.features),
            "features_from": self.source,
            "arithmetic": arithmetic.name if arithmetic else "unknown",
            "arithmetic_from": "onnxruntime probe" if self.measured else "cpu features",
            "profile": self.profile_name,
        }


@functools.cache
def host_cpu() -> HostCpu:
    """This machine's CPU, read once from the OS and confirmed by a probe of onnxruntime's
    kernels (tests pass a HostCpu of their own instead)."""
    arch = ARCHES.get(platform.machine().lower(), platform.machine().lower() or "unknown")
    features, source = read_features()
    return HostCpu(arch, features, source, probe_arithmetic().name)


def read_features() -> tuple[tuple[str, ...], str]:
    """The int8 features the OS reports and where from, or ((), 'unknown')."""
    system = platform.system()
    if system == "Linux" and Path("/proc/cpuinfo").is_file():
        return read_linux_features(Path("/proc/cpuinfo").read_text()), "/proc/cpuinfo"
    if system == "Darwin" and shutil.which("sysctl"):
        found = read_macos_features()
        if found is not None:
            return found, "sysctl"
    return (), "unknown"


def read_linux_features(cpuinfo: str) -> tuple[str, ...]:
    """The int8 features named in /proc/cpuinfo's first `flags` (x86) or `Features` (ARM)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            words = set(value.split())
            return tuple(f for f in (*X86_FEATURES, *ARM_FEATURES) if f in words)
    return ()


def read_macos_features() -> tuple[str, ...] | None:
    """The int8 features macOS's sysctl reports, or None when it answers nothing."""
    keys = [
        "machdep.cpu.features",
        "machdep.cpu.leaf7_features",
        *(k for k in MACOS_NAMES if k.startswith("hw.")),
    ]
    words: set[str] = set()
    for key in keys:
        result = subprocess.run(
            ["sysctl", "-n", key], capture_output=True, text=True, timeout=10, check=False
        )
        value = result.stdout.strip()
        if result.returncode == 0 and value:
            words.update(
                value.split() if not key.startswith("hw.") else ([key] if value == "1" else [])
            )
    if not words:
        return None
    order = (*X86_FEATURES, *ARM_FEATURES)
    return tuple(f for f in order if f in {MACOS_NAMES.get(w, "") for w in words})


def resolve_profile(name: str, host: HostCpu | None = None) -> CpuProfile:
    """The CpuProfile named (`host`: the one of `host`, by default this machine's CPU)."""
    if name == "host":
        return PROFILES[(host or host_cpu()).profile_name]
    if name not in PROFILES:
        raise UsageError(f"cpu must be one of {', '.join(PROFILE_CHOICES)}, not '{name}'.")
    return PROFILES[name]
