"""Named boards: what the emulator imitates of each, and what each was measured to do.

    BOARDS["pi4"] -> Board(name, description, cores, throughput, ... emulation fields)
    EMULATED: the boards `device-harness emulate` can build (Raspberry Pi OS's userland)

Throughput figures are measurements published by others, each with its source, for
`device_harness.host.predict`. No published fp32 matmul rate of these boards was found, so
the fp32 rate is twice a measured FP64 HPL rate: a 128-bit NEON FMA does 4 fp32 lanes
where it does 2 fp64 ones. Memory bandwidth is a copy's (bytes copied per second).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Throughput:
    gflops: float  # fp32 matrix multiply on every core the step uses, GFLOP/s
    copy_gbps: float  # memory copy, GB/s (bytes copied, not read + written)
    source: str


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    cores: int
    throughput: Throughput
    # emulation (device_harness.host.emulate); None: not emulated
    model: str | None = None  # the board's /proc/cpuinfo "Model" line
    cpu: str | None = None  # qemu's -cpu
    part: str | None = None  # ARM's CPU part number in cpuinfo (Cortex-A72 0xd08, A76 0xd0b)
    features: str | None = None  # cpuinfo "Features", as a 64-bit Raspberry Pi OS kernel prints them


BOARDS = {b.name: b for b in (
    Board("pi4", "Raspberry Pi 4 Model B: 4x Cortex-A72", 4,
          Throughput(2 * 11.679, 2.777,
                     "HPL FP64 11.679 GFLOPS on 4 cores, OpenBLAS (github.com/geerlingguy/top500-benchmark/issues/15); "
                     "tinymembench C copy 2776.9 MB/s on a Pi 4 at 1.25 GHz, the same BCM2711 and LPDDR4 "
                     "(github.com/geerlingguy/sbc-reviews/issues/110)"),
          model="Raspberry Pi 4 Model B Rev 1.5", cpu="cortex-a72", part="0xd08",
          features="fp asimd evtstrm crc32 cpuid"),
    Board("pi5", "Raspberry Pi 5 Model B: 4x Cortex-A76, 2.4 GHz", 4,
          Throughput(2 * 30.249, 4.870,
                     "HPL FP64 30.249 GFLOPS on 4 cores at 2.4 GHz (github.com/geerlingguy/top500-benchmark/issues/18); "
                     "tinymembench C copy 4870.3 MB/s (github.com/geerlingguy/sbc-reviews/issues/21)"),
          model="Raspberry Pi 5 Model B Rev 1.0", cpu="cortex-a76", part="0xd0b",
          features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
                   "asimddp"),
    Board("phone-a76", "a mid-range phone's big core: one Cortex-A76 at 2.4 GHz, one thread", 1,
          Throughput(2 * 16.18, 4.64,
                     "measured on a Raspberry Pi 5's A76 (not a phone's memory): HPL FP64 16.18 GFLOPS, 1 thread "
                     "(github.com/OpenMathLib/OpenBLAS/issues/4581); whisper.cpp memcpy 4.64 GB/s, 1 thread "
                     "(github.com/ggml-org/whisper.cpp/issues/89)")),
)}
EMULATED = {n: b for n, b in BOARDS.items() if b.cpu}
