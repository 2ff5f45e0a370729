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

if sys.argv[1] != "default":
    assert runtime.keep_freed_memory("mixed_bfloat16")
if sys.argv[1] != "default" and sys.argv[1] != "keep":
    # tf.data lowers glibc's mmap threshold when it builds this dataset
    import tensorflow as tf
    def generator_dataset(*args):
        return tf.data.Dataset.from_generator(lambda: iter([np.zeros(3, np.uint8)]),
                                              output_signature=tf.TensorSpec([3], tf.uint8))
    if sys.argv[1] == "epoch_batches":  # an epoch of the training loop, from such a pipeline
        from pix2pix_tf import data, training
        from pix2pix_tf.config import Config
        data.train_dataset = generator_dataset
        list(training.epoch_batches(Config(precision="mixed_bfloat16"), tf.distribute.get_strategy(), 0, 0))
    else:
        list(generator_dataset())
    if sys.argv[1] == "generator_then_keep":
        assert runtime.keep_freed_memory("mixed_bfloat16")

def rounds():
    # After a generator dataset: live tensors keep most of each thread arena's 64 MiB heap in use, as in a step.
    ballast = np.ones(12 << 20, np.float32) if sys.argv[1] not in ("default", "keep") else None
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


def test_fp32_training_keeps_glibc_defaults() -> None:
    """In fp32 (CPUs without bfloat16) the kept memory would raise the peak RSS above a plain step's: not applied."""
    from pix2pix_tf import runtime

    assert runtime.keep_freed_memory("fp32") is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
@pytest.mark.slow
def test_kept_freed_memory_is_reused_instead_of_faulted_in_again() -> None:
    default, kept = faults_per_round("default"), faults_per_round("keep")
    # A round touches 60 MiB (15360 pages). How much of it glibc's defaults hand back and fault in again depends on
    # how the threads interleave (330-2000 pages per round measured); kept memory is reused almost entirely.
    assert kept < 0.02 * ROUND_PAGES
    assert kept < 0.5 * default


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
@pytest.mark.slow
def test_settings_reapplied_after_a_generator_dataset_keep_memory_again() -> None:
    """TensorFlow resets the mmap threshold when it builds a from_generator dataset (as the folder source does);
    applying the settings again restores the reuse, and the training loop's epoch of batches does so itself."""
    after_generator = faults_per_round("generator")
    for mode in ("generator_then_keep", "epoch_batches"):
        reapplied = faults_per_round(mode)
        assert reapplied < 0.02 * ROUND_PAGES, mode
        assert reapplied < 0.5 * after_generator, mode
