"""ctqc.allocator: freed memory is reused instead of faulted in again (glibc only)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from ctqc import allocator


def _huge_pages_always() -> bool:
    try:  # with THP "always", mapped blocks fault in 2 MiB pages and the fault counts below shrink 512×
        return "[always]" in open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return False


glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
four_kib_faults = pytest.mark.skipif(_huge_pages_always(), reason="transparent huge pages are 'always' here")

# 20 rounds of a network pass in miniature: activations of 8-48 MiB allocated, written, all freed; minor
# page faults counted. glibc's default mmap threshold adapts up to 32 MiB only: a larger block (a batch of
# 16 Inception activations at 147×147×64 in bf16 is 44 MiB) is mapped, faulted in and unmapped every time.
PROBE = """
import resource, sys
import torch
from ctqc import allocator
applied = allocator.retain_freed_memory() if sys.argv[1] == "on" else False
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    blocks = [torch.ones(n << 20, dtype=torch.float64) for n in (6, 3, 1, 6, 2)]  # MiB / 8, written
    del blocks
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def probe(mode: str, env: dict[str, str] | None = None) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env).stdout.split()
    return out[0] == "True", int(out[1])


@glibc_only
@four_kib_faults
def test_tuning_stops_refaulting_freed_blocks():
    applied, faults_on = probe("on")
    _, faults_off = probe("off")
    if not applied:
        pytest.skip("this glibc refuses a 256 MiB mmap threshold (older versions cap it at 32 MiB)")
    # defaults: each round faults its two 48 MiB blocks afresh (24,576 pages); tuned: the first round only
    assert faults_off > 20 * 20_000 and faults_on < faults_off / 5


@glibc_only
def test_env_var_turns_it_off(monkeypatch):
    import os

    assert not probe("on", {**os.environ, allocator.ENV: "0"})[0]
    monkeypatch.setenv(allocator.ENV, "0")
    assert allocator.retain_freed_memory() is False
