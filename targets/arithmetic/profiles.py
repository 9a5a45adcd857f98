"""Int8 arithmetics and CPU profiles: which integer sums a Q/DQ artifact may be computed in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Int8Arithmetic:
    """How a CPU's int8 kernels sum u8×s8 products (the same Q/DQ file differs between them)."""

    name: str = field(metadata={"help": "identifier written to reports"})
    pair_saturation: bool = field(
        metadata={"help": "pairs of u8×s8 products are added in a saturating int16 first"}
    )
    description: str = field(default="", metadata={"help": "one line for people"})


EXACT = Int8Arithmetic(
    "exact-int32",
    pair_saturation=False,
    description="every u8×s8 product summed in int32: VNNI, AMX, ARM, TensorRT, XNNPACK and "
    "the Q/DQ reference (DequantizeLinear then a float op)",
)
AVX2_PAIRS = Int8Arithmetic(
    "x86-avx2-pairs-int16",
    pair_saturation=True,
    description="onnxruntime's x86 U8S8 kernels without VNNI (VPMADDUBSW): pairs of u8×s8 "
    "products summed in a saturating int16, then in int32",
)
ARITHMETICS = {a.name: a for a in (EXACT, AVX2_PAIRS)}


def arithmetic_named(name: str) -> Int8Arithmetic:
    """The Int8Arithmetic of that name (QuantScheme.arithmetic, report fields)."""
    if name not in ARITHMETICS:
        raise ValueError(f"no int8 arithmetic '{name}'; there are {sorted(ARITHMETICS)}")
    return ARITHMETICS[name]


@dataclass(frozen=True)
class CpuProfile:
    """A family of CPUs an artifact is made for: the int8 arithmetics it may run in there."""

    name: str = field(metadata={"help": "the -O cpu= value"})
    arithmetics: tuple[Int8Arithmetic, ...] = field(
        metadata={"help": "every arithmetic an artifact for this profile may be computed in"}
    )
    description: str = field(default="", metadata={"help": "one line for people"})

    @property
    def pair_saturation(self) -> bool:
        """Whether some CPU of this profile sums u8×s8 pairs in a saturating int16."""
        return any(a.pair_saturation for a in self.arithmetics)


PROFILES = {
    p.name: p
    for p in (
        CpuProfile(
            "portable",
            (EXACT, AVX2_PAIRS),
            "every CPU onnxruntime runs on: must hold in exact and in AVX2 pair arithmetic",
        ),
        CpuProfile("x86-avx2", (AVX2_PAIRS,), "x86-64 with AVX2 or AVX-512 but no VNNI"),
        CpuProfile("x86-vnni", (EXACT,), "x86-64 with AVX-512 VNNI, AVX-VNNI or AMX"),
        CpuProfile("arm64", (EXACT,), "64-bit ARM (NEON, dot-product, i8mm kernels)"),
    )
}
# `host` is no profile of its own: it resolves to the profile of the CPU it runs on.
PROFILE_CHOICES = ("portable", "host", "x86-avx2", "x86-vnni", "arm64")
