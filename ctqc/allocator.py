"""Keep freed memory in the process: glibc's defaults cost ctqc's CPU passes up to ~20 % of their speed.

PyTorch's CPU tensors come from ``malloc``. Under glibc's defaults a block above the mmap
threshold (128 KiB, adapting up to 32 MiB) is a fresh ``mmap`` that goes back to the kernel
when freed, and a free heap top beyond the trim threshold is given back too. A network pass
allocates and frees the same activation sizes batch after batch — at batch 16 the Inception's
largest are 44 MiB — so every batch faults that memory in again, page by page, zero-filled:
~550,000 minor page faults per 320 images in the Inception fast path. With the thresholds
raised, freed blocks are reused from the heap and the faults vanish. Measured here in
interleaved runs, as the machine's speed drifts (``bench/RESULTS.md``): that pass 38.8 vs
31.9 img/s, medians of 7 process pairs (paired median 1.17×); the QC of 200 real + 2,000
synthetic images 75-81 s vs 95-97 s cold in two pairs, 86 vs 87 s in a later single pair.

The cost: the process keeps its peak heap until it exits. jemalloc/tcmalloc (``LD_PRELOAD``,
as PyTorch's CPU performance guide suggests) give the same benefit without that, but are
not on every machine; this needs nothing. Only ``ctqc.cli.main`` (the ``ctqc`` command,
every subcommand), ``bench/qc_speed.py`` and ``bench/inception_throughput.py`` call it — importing
ctqc as a library changes nothing; ``CTQC_MALLOC_TUNING=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import platform

ENV = "CTQC_MALLOC_TUNING"

# mallopt parameters (glibc <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 256 << 20  # blocks above this still get their own mapping (and go back when freed)
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps
TRIM_THRESHOLD = (1 << 31) - 1  # never give the heap's top back (the largest value mallopt takes)


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if applied.

    A no-op (False) off glibc or when ``$CTQC_MALLOC_TUNING`` is ``0``; False also if glibc
    refuses a setting (old glibc versions cap the mmap threshold at 32 MiB), the others applied.
    """
    if os.environ.get(ENV, "1") == "0" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname on every Linux architecture it supports
    except OSError:
        return False
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TOP_PAD, TOP_PAD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    applied = [libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1 for option, value in settings]  # each one
    return all(applied)
