"""Process-wide runtime settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Worker threads allocate, touch and free a few arrays of the sizes a training step's gradients have, as the
# thread pools of a step do; prints the mean minor page faults per round.
ALLOCATION_PATTERN = r"""
import resource, sys, threading
import numpy as np
from pix2pix_tf import runtime

if sys.argv[1] == "keep":
    assert runtime.keep_freed_memory()

def rounds():
    for _ in range(40):
        arrays = [np.ones(n, np.float32) for n in (6 << 20, 3 << 20, 5 << 20, 1 << 20)]
        del arrays

rounds()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
threads = [threading.Thread(target=rounds) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 80)
"""


ROUND_PAGES = (6 + 3 + 5 + 1) * (1 << 20) * 4 // 4096


def faults_per_round(mode: str) -> float:
    result = subprocess.run([sys.executable, "-c", ALLOCATION_PATTERN, mode], capture_output=True, text=True,
                            check=True)
    return float(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_kept_freed_memory_is_reused_instead_of_faulted_in_again() -> None:
    default, kept = faults_per_round("default"), faults_per_round("keep")
    # A round touches 60 MiB (15360 pages). How much of it glibc's defaults hand back and fault in again depends on
    # how the threads interleave (330-2000 pages per round measured); kept memory is reused almost entirely.
    assert kept < 0.02 * ROUND_PAGES
    assert kept < 0.5 * default
