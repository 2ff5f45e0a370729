"""What every command-line tool shares: errors a user can act on become one line on stderr, never a traceback;
and the setting that only the inference-only tools (evaluate, colorize) make for their own process."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

from pix2pix_tf.errors import UserError

FROZEN_WEIGHTS_VARIABLE = "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"


def assume_frozen_weights() -> None:
    """Tell TensorFlow's oneDNN kernels that no weight in this process ever changes (unless the user set it).

    Each forward convolution then converts its weights to oneDNN's blocked layout once and keeps them, where
    it otherwise converts them on every call (for the exported 256 px generator at batch 1, about a third of
    the time oneDNN spent).
    Only for processes that run nothing but inference, before their first convolution: a training step under
    it keeps convolving with the weights it first saw (measured), so the library never sets it itself.
    """
    os.environ.setdefault(FROZEN_WEIGHTS_VARIABLE, "1")


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
