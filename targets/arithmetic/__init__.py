"""The int8 arithmetic a CPU computes a Q/DQ graph in: profiles, host detection, emulation and
saturation-safe weights. Shared by the targets and compressor/ (a protocol-level package)."""

from targets.arithmetic.dynamic import arithmetic_model, unemulated_nodes
from targets.arithmetic.emulate import emulation_model, exact_session
from targets.arithmetic.host import HostCpu, host_cpu, resolve_profile
from targets.arithmetic.profiles import (
    ARITHMETICS,
    AVX2_PAIRS,
    EXACT,
    PROFILE_CHOICES,
    PROFILES,
    CpuProfile,
    Int8Arithmetic,
    arithmetic_named,
)

__all__ = [
    "ARITHMETICS",
    "AVX2_PAIRS",
    "EXACT",
    "PROFILES",
    "PROFILE_CHOICES",
    "CpuProfile",
    "HostCpu",
    "Int8Arithmetic",
    "arithmetic_model",
    "arithmetic_named",
    "emulation_model",
    "exact_session",
    "host_cpu",
    "resolve_profile",
    "unemulated_nodes",
]
