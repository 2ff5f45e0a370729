"""The command-line tools' quiet TensorFlow start on a machine without a GPU, and the stderr filter behind it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pix2pix_tf import cli

ROOT = Path(__file__).resolve().parents[1]
# What TensorFlow 2.21 writes on a CPU-only machine when nothing quiets it (see cli.CPU_START_NOTICES).
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers", "cuInit",
         "cpu_feature_guard", "remapper failed", "Mutation::Apply")
cpu_only = pytest.mark.skipif(not cli._cpu_only_linux(), reason="the quiet start applies on Linux without a GPU")


def run_python(code: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """`code` in a fresh Python, with TensorFlow's log level as a user's shell would have it (unset)."""
    environment = {key: value for key, value in os.environ.items() if key != cli.LOG_LEVEL_VARIABLE}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=environment, cwd=ROOT)


def test_the_stderr_filter_drops_only_the_matching_lines_and_keeps_a_crashs_last_words() -> None:
    result = run_python("""
        import os, sys
        from pix2pix_tf.cli import stderr_without
        print("before", file=sys.stderr)
        with stderr_without("^drop"):
            os.write(2, b"kept 1\\ndrop this\\nkept 2 (drop)\\n")
            print("kept 3", file=sys.stderr)
        print("after", file=sys.stderr)
        with stderr_without("^drop"):
            os.write(2, b"drop this\\nlast words\\n")
            os.abort()
        """)
    assert result.returncode != 0
    assert result.stderr.splitlines() == ["before", "kept 1", "kept 2 (drop)", "kept 3", "after", "last words"]


@cpu_only
def test_tensorflow_starts_and_trains_quietly_on_a_cpu_and_real_errors_still_show() -> None:
    # A biased convolution followed by LeakyReLU, trained in a tf.function: the graph grappler's remapper fails on.
    result = run_python("""
        from pix2pix_tf.cli import quiet_tensorflow_start

        quiet_tensorflow_start(training=True)
        import keras
        import tensorflow as tf

        model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 4, strides=2, padding="same"),
                                  keras.layers.LeakyReLU(0.2)])
        optimizer = keras.optimizers.Adam()

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(model(x, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
            return loss

        print("loss", float(step(tf.ones([2, 16, 16, 3]))))
        raise RuntimeError("a real error")
        """)
    assert result.stdout.startswith("loss ")
    assert result.returncode == 1 and result.stderr.strip().endswith("RuntimeError: a real error")
    assert not [line for line in result.stderr.splitlines() if any(noise in line for noise in NOISE)]


@cpu_only
@pytest.mark.slow
def test_a_tiny_training_run_prints_nothing_on_stderr(tmp_path: Path) -> None:
    result = run_python(f"""
        import sys
        from pix2pix_tf.train import main

        sys.exit(main(["--dataset", "sample", "--steps", "1", "--image-size", "16", "--ngf", "4", "--ndf", "4",
                       "--progress-samples", "0", "--chroma-scale", "1", "--run-dir", {str(tmp_path / "run")!r},
                       "--export-dir", {str(tmp_path / "model")!r}]))
        """, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done at step 1" in result.stdout
    assert result.stderr == ""
