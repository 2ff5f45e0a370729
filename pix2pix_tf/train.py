"""`python train.py` / `pix2pix-train`: train pix2pix from a Config built on the command line, then calibrate
the export's chroma factor and export the generator (`train_and_export`, which the experiments run too)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from pix2pix_tf.cli import quiet_tensorflow_start, run_cli
from pix2pix_tf.config import Config, add_config_arguments, config_from_args

if TYPE_CHECKING:  # TensorFlow loads when training starts, not for --help or a refused flag
    from pix2pix_tf.training import RunSummary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train pix2pix (Isola et al. 2017); re-running the same command resumes.")
    parser.add_argument("--config", metavar="FILE", help="start from this config.json (flags override it)")
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start over")
    add_config_arguments(parser)
    return parser


def train_and_export(config: Config, fresh: bool = False, log: Callable[[str], None] = print) -> RunSummary:
    """Train (or resume) the run, then, on the chief, export the generator with the chroma factor `calibrated`
    chose; a run stopped by its time budget is exported too. Returns the run's summary, with its export dir on
    the chief."""
    from pix2pix_tf import export, training

    summary = training.train(config, fresh=fresh, log=log)
    if not summary.is_chief:
        return summary
    export_dir = export.export_generator(summary.generator, calibrated(summary, log),
                                         summary.config.resolved_export_dir(), summary.step)
    log(f"exported the generator to {export_dir}")
    return dataclasses.replace(summary, export_dir=export_dir)


def calibrated(summary: RunSummary, log: Callable[[str], None] = print) -> Config:
    """The run's Config with the export's chroma factor chosen on held-out photos (saved as calibration.json in
    the run dir); as it is when it sets --chroma-scale or its dataset is paired."""
    from pix2pix_tf import calibration, sources
    from pix2pix_tf.monitoring import format_values

    config, run_dir = summary.config, summary.config.resolved_run_dir()
    if config.chroma_scale is not None or sources.is_paired(config):
        return config
    chosen = calibration.calibrate(summary.generator, config)
    chosen.save(run_dir / "calibration.json")
    log(f"chroma scale {chosen.scale:g}: the outputs' colourfulness on {chosen.n_photos} {chosen.split} photos nearest "
        f"the {chosen.n_target_photos} training photos' ({chosen.target_colorfulness:.1f}; per factor: "
        f"{format_values(chosen.colorfulness)})")
    if chosen.scale == 0:
        log("the network paints almost no colour: the export returns photos grey. Train longer, or on more photos.")
    return config.replace(chroma_scale=chosen.scale)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        config = config_from_args(args)  # a Config it refuses: ConfigError, a one-line user error
        quiet_tensorflow_start(training=True)
        summary = train_and_export(config, fresh=args.fresh)
        exported = f"model exported to {summary.export_dir}" if summary.export_dir else "the chief worker exports"
        print(f"done at step {summary.step}; {exported}")
        return 0

    # A checkpoint is written to a temporary first, so a run stopped while saving keeps its last one.
    return run_cli("train.py", body, resume_hint="re-run the same command to resume from the last checkpoint")


if __name__ == "__main__":
    sys.exit(main())
