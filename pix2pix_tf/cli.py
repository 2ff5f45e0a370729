"""What every command-line tool shares: errors a user can act on become one line on stderr, never a traceback;
a quiet TensorFlow start on a machine without a GPU; and the setting that only the inference-only tools
(evaluate, colorize) make for their own process."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

from pix2pix_tf.errors import UserError

FROZEN_WEIGHTS_VARIABLE = "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"
LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# What TensorFlow's import and its CUDA probe write to stderr on a machine without an NVIDIA device, whatever
# TF_CPP_MIN_LOG_LEVEL says: the first three come before TensorFlow reads it, twice (two libraries log them).
CPU_START_NOTICES = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"\] oneDNN custom operations are on\. ",
    r"\] Could not find cuda drivers on your machine, GPU will not be used\.$",
    r"\] failed call to cuInit: ",
)
# Copies its stdin to its stdout without the lines that match argv[1]; ignores Ctrl-C, and ends with its input.
_LINE_FILTER = """import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
dropped = re.compile(sys.argv[1].encode())
for line in sys.stdin.buffer:
    if not dropped.search(line.rstrip(b"\\r\\n")):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


def quiet_tensorflow_start(training: bool = False) -> None:
    """Import TensorFlow so that its start on a machine without a GPU does not read like a failure.

    Call it before anything imports TensorFlow. TensorFlow's C++ logs below ERROR stay off (TF_CPP_MIN_LOG_LEVEL=2
    unless set). On Linux without an NVIDIA device, TensorFlow's import and its CUDA probe run with the
    CPU_START_NOTICES dropped from stderr (all else they write still shows); with `training`, grappler's remapper
    is turned off: on a CPU it fails on every training step whose graph has a biased convolution followed by
    LeakyReLU (D's first layer), logging an ERROR and leaving that graph as it was. TF_CPP_MIN_LOG_LEVEL=0 (all
    logs) turns all this off.
    """
    os.environ.setdefault(LOG_LEVEL_VARIABLE, "2")
    if "tensorflow" in sys.modules or os.environ[LOG_LEVEL_VARIABLE] == "0" or not _cpu_only_linux():
        return
    with stderr_without("|".join(CPU_START_NOTICES)):
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe, which fails here
    if training:
        tf.config.optimizer.set_experimental_options({"remapping": False})


def _cpu_only_linux() -> bool:
    """Linux without an NVIDIA driver or device node, where TensorFlow's CUDA start can only fail (and a Python
    executable to run `stderr_without`'s filter)."""
    nvidia = os.path.exists("/proc/driver/nvidia") or glob.glob("/dev/nvidia*")
    return sys.platform.startswith("linux") and bool(sys.executable) and not nvidia


@contextlib.contextmanager
def stderr_without(pattern: str) -> Iterator[None]:
    """Within: what this process writes to stderr (file descriptor 2, so C++ logs too) goes through a child
    process that drops the lines matching `pattern`. A child, not a thread, so that what a crash writes last
    still arrives."""
    sys.stderr.flush()
    saved = os.dup(2)
    child = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LINE_FILTER, pattern], stdin=subprocess.PIPE,
                             stdout=saved)
    assert child.stdin is not None
    os.dup2(child.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        child.stdin.close()
        child.wait()


def assume_frozen_weights() -> None:
    """Tell TensorFlow's oneDNN kernels that no weight in this process ever changes (unless the user set it).

    Each forward convolution then converts its weights to oneDNN's blocked layout once and keeps them, where
    it otherwise converts them on every call (bench/README.md has what that saves). Only for processes that run
    nothing but inference, before their first convolution: a training step under it keeps convolving with the
    weights it first saw, so the library never sets it itself.
    """
    os.environ.setdefault(FROZEN_WEIGHTS_VARIABLE, "1")


def inference_process(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """`main(argv)` in a process of its own that only runs inference, with `assume_frozen_weights`."""
    assume_frozen_weights()
    return main(argv)


def one_line_reason(error: Exception) -> str:
    """One line for an OSError or TensorFlow error, without TensorFlow's "{{function_node ...}}" prefix."""
    message = getattr(error, "message", None) or str(error)
    return re.sub(r"\{\{[^}]*\}\}\s*", "", message).strip().splitlines()[0]


def _out_of_tensorflow_resources(error: Exception) -> bool:
    """A TensorFlow ResourceExhaustedError (no memory, or no disk for a checkpoint); TensorFlow is not imported
    here, so a tool that fails before it loads TensorFlow does not pay for the import."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(error, tf.errors.ResourceExhaustedError)


def run_cli(prog: str, body: Callable[[], int], resume_hint: str = "") -> int:
    """Run `body` and return its exit status; UserError -> "prog: error: ..." and 2; a file that cannot be
    written (a full disk, a folder that is a file) or exhausted memory -> "prog: error: ..." and 1; Ctrl-C -> 130.
    `resume_hint` (how to carry on) ends the last two messages."""
    try:
        return body()
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not (isinstance(error, OSError) or _out_of_tensorflow_resources(error)):
            raise
        print(f"{prog}: error: {one_line_reason(error)}" + (f". Free space or memory, then {resume_hint}."
                                                           if resume_hint else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted" + (f"; {resume_hint}." if resume_hint else ""), file=sys.stderr)
        return 130
