"""What every command-line tool shares: a UserError becomes one line on stderr and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pix2pix_tf.errors import UserError


def run_cli(prog: str, body: Callable[[], int]) -> int:
    """Run `body` and return its exit status; UserError -> "prog: error: ..." and 2, Ctrl-C -> 130."""
    try:
        return body()
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
