"""Host CPU features from the OS's report, the arithmetic they mean, and the profiles."""

from __future__ import annotations

import pytest

from foundation.errors import UsageError
from targets.arithmetic import AVX2_PAIRS, EXACT, PROFILES, HostCpu, host_cpu, resolve_profile
from targets.arithmetic.host import read_linux_features

EPYC_ZEN2 = "processor\t: 0\nflags\t\t: fpu sse4_1 sse4_2 avx avx2 fma bmi2 sha_ni\n"
ICELAKE = "flags\t\t: avx2 avx512f avx512bw avx512_vnni avx512vl\nflags : ignored\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd aes crc32 atomics asimddp i8mm sve\n"


@pytest.mark.parametrize(
    ("cpuinfo", "arch", "features", "arithmetic", "profile"),
    [
        (EPYC_ZEN2, "x86_64", ("avx2",), AVX2_PAIRS, "x86-avx2"),
        (ICELAKE, "x86_64", ("avx2", "avx512f", "avx512bw", "avx512_vnni"), EXACT, "x86-vnni"),
        (GRAVITON, "arm64", ("asimddp", "i8mm"), EXACT, "arm64"),
        ("flags : sse4_1 sse4_2\n", "x86_64", (), EXACT, "x86-vnni"),
    ],
)
def test_features_decide_the_arithmetic(cpuinfo, arch, features, arithmetic, profile):
    host = HostCpu(arch, read_linux_features(cpuinfo), "/proc/cpuinfo")
    assert host.features == features
    assert host.arithmetic == arithmetic
    assert resolve_profile("host", host).name == profile
    assert host.to_dict()["arithmetic"] == arithmetic.name


def test_avx512_without_vnni_pairs_like_avx2():
    host = HostCpu("x86_64", ("avx2", "avx512f", "avx512bw"), "/proc/cpuinfo")
    assert host.arithmetic is AVX2_PAIRS


def test_an_unknown_host_resolves_to_portable():
    host = HostCpu("riscv64", (), "unknown")
    assert host.arithmetic is None and not host.known
    assert resolve_profile("host", host).name == "portable"


def test_profiles_name_their_arithmetics():
    assert PROFILES["portable"].arithmetics == (EXACT, AVX2_PAIRS)
    assert PROFILES["portable"].pair_saturation and PROFILES["x86-avx2"].pair_saturation
    assert not PROFILES["x86-vnni"].pair_saturation and not PROFILES["arm64"].pair_saturation
    with pytest.raises(UsageError, match="portable, host"):
        resolve_profile("avx9")


def test_this_host_is_read_once_from_the_os():
    host = host_cpu()
    assert host is host_cpu()
    assert host.to_dict()["profile"] in PROFILES


def test_the_kernels_probe_overrides_features_that_cpuid_masking_misreports():
    # qemu-user and some VMs show the real /proc/cpuinfo while the kernels run without VNNI.
    host = HostCpu("x86_64", ("avx2", "avx512_vnni"), "/proc/cpuinfo", AVX2_PAIRS.name)
    assert host.arithmetic is AVX2_PAIRS and host.profile_name == "x86-avx2"
    assert host.to_dict()["arithmetic_from"] == "onnxruntime probe"


def test_the_probe_agrees_with_the_hosts_kernels_on_a_saturating_conv():
    from targets.arithmetic.probe import probe_arithmetic

    assert host_cpu().measured == probe_arithmetic().name
    assert host_cpu().to_dict()["arithmetic"] == probe_arithmetic().name
