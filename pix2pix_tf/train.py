"""`python train.py` / `pix2pix-train`: train pix2pix from a Config built on the command line."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pix2pix_tf.cli import run_cli  # noqa: E402
from pix2pix_tf.config import add_config_arguments, config_from_args  # noqa: E402
from pix2pix_tf.errors import UserError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train pix2pix (Isola et al. 2017); re-running the same command resumes.")
    parser.add_argument("--config", metavar="FILE", help="start from this config.json (flags override it)")
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start over")
    add_config_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        try:
            config = config_from_args(args)
            from pix2pix_tf.training import train

            summary = train(config, fresh=args.fresh)
        except ValueError as error:  # an invalid Config
            raise UserError(str(error)) from error
        exported = f"model exported to {summary.export_dir}" if summary.export_dir else "the chief worker exports"
        print(f"done at step {summary.step}; {exported}")
        return 0

    # A checkpoint is written to a temporary first, so a run stopped while saving keeps its last one.
    return run_cli("train.py", body, resume_hint="re-run the same command to resume from the last checkpoint")


if __name__ == "__main__":
    sys.exit(main())
