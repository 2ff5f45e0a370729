"""Rerun the study's experiments: one JSON grid of Config deltas per experiment, trained, scored and compared.

`python -m pix2pix_tf.experiments list` shows every grid and what each of its variants changes.

`python -m pix2pix_tf.experiments run GRID [--dataset NAME] [--steps N | --epochs N] [any train.py flag]
[--seeds 0 1 ...] [--results-dir DIR] [--split test]` trains every variant of GRID (a grid name or a path to a
grid file; once per seed with --seeds), resuming any whose run exists and skipping any already trained to the
same config; exports each; scores each export with the evaluator (`pix2pix_tf.evaluate`: the model beside its
baseline, the grey copy on colour sets, the input copy on paired sets) on one split; and writes to RESULTS_DIR
(default runs/experiments/<grid>-<dataset>):

* summary.csv: one row per variant and seed, the model's and the baseline's mean of every metric;
* summary.md: one row per variant (with several seeds: the mean over seeds and their range), and with several
  seeds, each variant against the grid's reference (its "paper defaults" variant): better, worse, or within
  the seed spread;
* charts/<metric>.png (one bar chart per metric) and charts/all_metrics.png (all of them in one figure);
* comparison.png: INPUT | one column per variant | TARGET on the same examples of the split (a grid whose
  variants read different data, as `paired` does: INPUT | OUTPUT | TARGET, a few rows per variant);
* gifs/<variant>.gif: each variant's progress GIF (one frame per finished epoch);
* <variant>/run (checkpoints, logs), <variant>/model (the export), <variant>/evaluate-<split> (the evaluator's
  report); with --seeds, the same under <variant>/seed<k>/ for each seed k.

`python -m pix2pix_tf.experiments judge SUMMARY ... [--out FILE]` reads several grids' summary.csv (run at one
budget) and judges every variant against all their paper-defaults runs together: each grid trains that same
configuration, so the pool shows its spread better than one grid's seeds.

A grid file is {"description": str, "variants": {name: {config field: value}}}; each variant's Config is
`defaults_for(dataset)` plus the command-line flags plus the variant's delta. A flag may not set a field that
the grid varies (it would erase the comparison). Variants that name their own dataset (the paired grid) take
no --dataset / --data-dir. Without --steps / --epochs / --epochs-decay every variant trains DEFAULT_STEPS
steps (a CPU-sized budget); --epochs N alone means N epochs at a constant learning rate and no decay.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pix2pix_tf.cli import quiet_tensorflow_start, run_cli
from pix2pix_tf.config import Config, add_config_arguments, defaults_for
from pix2pix_tf.errors import UserError
from pix2pix_tf.experiment_reports import describe_budget, pooled_verdicts, summary_markdown, write_reports

GRIDS_ENV = "PIX2PIX_EXPERIMENTS"  # a folder of grid files to use instead of the shipped ones
INSTALLED_GRIDS = Path(sys.prefix) / "share" / "pix2pix-tf" / "experiments"  # setup.cfg [options.data_files]
DEFAULT_STEPS = 200
DEFAULT_DATASET = "sample"
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RUNNER_FIELDS = ("run_dir", "export_dir")  # set per variant by the runner
# Fields that change how a run is executed, not what it learns: a finished variant is not retrained for them.
EXECUTION_FIELDS = ("time_budget", "precision", "jit_compile", "strategy", "cpu_devices", "checkpoint_every",
                    "image_every")
BUDGET_FIELDS = ("steps", "epochs", "epochs_decay")


@dataclass
class Grid:
    """One experiment of the study: named variants, each a delta on the paper's defaults."""

    name: str
    description: str
    variants: dict[str, dict[str, Any]]

    @property
    def varied_fields(self) -> set[str]:
        return {key for delta in self.variants.values() for key in delta}


@dataclass
class VariantResult:
    """What happened to one variant: training status, and the evaluator's means when it could score it."""

    variant: str
    changes: str
    config: Config
    status: str
    seed: int | None = None  # set when the grid runs several seeds
    step: int | None = None
    n_images: int = 0
    model: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    baseline_kind: str = "grey"  # the evaluator's: "grey" (colour sets) or "input" (paired sets)
    target_colorfulness: float | None = None
    note: str = ""

    @property
    def name(self) -> str:
        """The variant, and its seed when the grid runs several: "lambda20 seed 1"."""
        return self.variant if self.seed is None else f"{self.variant} seed {self.seed}"

    @property
    def scored(self) -> bool:
        return bool(self.model)


# --- grids ------------------------------------------------------------------------------------------------


def grids_dir() -> Path:
    """Where the grid files are: $PIX2PIX_EXPERIMENTS, else experiments/ of a source checkout, else the
    copy a wheel installs under <prefix>/share/pix2pix-tf/experiments."""
    if os.environ.get(GRIDS_ENV):
        return Path(os.environ[GRIDS_ENV])
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "setup.cfg").is_file() and (checkout / "experiments").is_dir():
        return checkout / "experiments"
    if INSTALLED_GRIDS.is_dir():
        return INSTALLED_GRIDS
    raise UserError(f"no experiment grids found (looked in {checkout / 'experiments'} and {INSTALLED_GRIDS}); "
                    f"set {GRIDS_ENV} to a folder of grid files or pass a grid file's path")


def grid_names() -> list[str]:
    return sorted(path.stem for path in grids_dir().glob("*.json"))


def describe(delta: dict[str, Any]) -> str:
    """A delta as text, e.g. `lambda_l1=20, vflip=True`; "paper defaults" when it is empty."""
    return ", ".join(f"{key}={value}" for key, value in delta.items()) or "paper defaults"


def load_grid(name_or_path: str) -> Grid:
    """A grid by name (a file of `grids_dir()`) or by path; every variant checked against Config."""
    path = Path(name_or_path)
    if not (path.suffix == ".json" and path.is_file()):
        path = grids_dir() / f"{name_or_path}.json"
        if not path.is_file():
            raise UserError(f"unknown grid {name_or_path!r}; the grids are: {', '.join(grid_names())} "
                            "(or pass the path of a .json grid file)")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from error
    variants = content.get("variants") if isinstance(content, dict) else None
    if not isinstance(variants, dict) or not variants:
        raise UserError(f"{path}: expected {{\"description\": ..., \"variants\": {{name: {{field: value}}}}}} "
                        "with at least one variant")
    for name, delta in variants.items():
        if not VARIANT_NAME.match(name):
            raise UserError(f"{path}: variant name {name!r} must be letters, digits, '_', '.' or '-'")
        if not isinstance(delta, dict):
            raise UserError(f"{path}: variant {name!r} must be an object of config fields, got {delta!r}")
        _check_delta(path, name, delta)
    return Grid(name=path.stem, description=str(content.get("description", "")), variants=variants)


def _check_delta(path: Path, name: str, delta: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(delta) - known)
    if unknown:
        raise UserError(f"{path}: variant {name!r} sets unknown config field(s) {', '.join(unknown)}")
    reserved = sorted(set(delta) & set(RUNNER_FIELDS))
    if reserved:
        raise UserError(f"{path}: variant {name!r} may not set {', '.join(reserved)} (the runner sets them)")
    try:
        defaults_for(delta.get("dataset", DEFAULT_DATASET)).replace(**delta)
    except (TypeError, ValueError) as error:
        raise UserError(f"{path}: variant {name!r}: {error}") from error


# --- configs ----------------------------------------------------------------------------------------------


def variant_configs(grid: Grid, results_dir: Path, overrides: dict[str, Any]) -> dict[str, Config]:
    """Each variant's Config: defaults_for(its dataset) + the command line's `overrides` + its delta."""
    clash = sorted(set(overrides) & grid.varied_fields)
    if "dataset" in grid.varied_fields and "data_dir" in overrides:
        clash.append("data_dir")
    if clash:
        flags = ", ".join("--" + name.replace("_", "-") for name in clash)
        raise UserError(f"the {grid.name} grid varies {', '.join(sorted(grid.varied_fields))}; {flags} would "
                        "override what it compares (variants that name their own dataset take no --dataset / "
                        "--data-dir: the builders find their archives, see datasets/README.md)")
    reserved = sorted(set(overrides) & set(RUNNER_FIELDS))
    if reserved:
        raise UserError(f"{', '.join('--' + r.replace('_', '-') for r in reserved)}: the runner puts each "
                        "variant's run and export under the results folder; use --results-dir")
    overrides = dict(overrides)
    if not set(overrides) & set(BUDGET_FIELDS):
        overrides["steps"] = DEFAULT_STEPS
    elif "epochs" in overrides and "epochs_decay" not in overrides and "steps" not in overrides:
        overrides["epochs_decay"] = 0
    base_dataset = overrides.pop("dataset", DEFAULT_DATASET)
    configs = {}
    for name, delta in grid.variants.items():
        try:
            config = defaults_for(delta.get("dataset", base_dataset)).replace(**overrides).replace(**delta)
        except ValueError as error:
            raise UserError(f"variant {name}: {error}") from error
        configs[name] = config.replace(run_dir=str(results_dir / name / "run"),
                                       export_dir=str(results_dir / name / "model"))
    return configs


def seeded_configs(configs: dict[str, Config], seeds: list[int], results_dir: Path
                   ) -> dict[tuple[str, int | None], Config]:
    """Each (variant, seed) run: with one seed or none, the variants as they are (seed None); with several,
    every variant once per seed, under <variant>/seed<k>/."""
    if len(seeds) <= 1:
        return {(name, None): config if not seeds else config.replace(seed=seeds[0])
                for name, config in configs.items()}
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {' '.join(map(str, seeds))}: each seed once")
    runs: dict[tuple[str, int | None], Config] = {}
    for name, config in configs.items():
        for seed in seeds:
            folder = results_dir / name / f"seed{seed}"
            runs[(name, seed)] = config.replace(seed=seed, run_dir=str(folder / "run"),
                                                export_dir=str(folder / "model"))
    return runs


def default_results_dir(grid: Grid, dataset: str | None) -> Path:
    """runs/experiments/<grid>-<dataset>, or runs/experiments/<grid> when the variants name their datasets."""
    if "dataset" in grid.varied_fields:
        return Path("runs/experiments") / grid.name
    return Path("runs/experiments") / f"{grid.name}-{dataset or DEFAULT_DATASET}"


def _learned_fields(config: Config) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in EXECUTION_FIELDS}


def is_finished(config: Config) -> bool:
    """True when this variant's export exists and its run reached its target with the same learned config."""
    record = Path(config.run_dir or "") / "finished.json"
    if not record.is_file() or not (config.resolved_export_dir() / "saved_model.pb").is_file():
        return False
    saved = json.loads(record.read_text())
    return saved.get("config") == _learned_fields(config)


# --- running ----------------------------------------------------------------------------------------------


def train_variant(name: str, config: Config, log: Callable[[str], None]) -> tuple[str, int | None]:
    """Train (or resume) one variant in this process; returns (status, step)."""
    import keras

    from pix2pix_tf.train import train_and_export

    log(f"\n=== {name}: training ({describe_budget(config)}) ===")
    try:
        summary = train_and_export(config, log=log)
    except UserError as error:
        return f"failed: {error}", None
    finally:
        keras.backend.clear_session()
    if summary.stopped_early:
        return f"stopped early ({summary.stopped_early}); re-run to resume", summary.step
    record = {"config": _learned_fields(config), "step": summary.step, "losses": summary.losses}
    (Path(config.run_dir or "") / "finished.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return "trained", summary.step


def score_variant(result: VariantResult, split: str) -> None:
    """Fill `result` with the evaluator's means for its export (model and baseline) on `split`, written to
    evaluate-<split>/ beside the variant's run/; an export scored before (its metrics.json is newer than the
    export) is not scored again."""
    from pix2pix_tf.evaluate import evaluate

    export = result.config.resolved_export_dir()
    if not (export / "saved_model.pb").is_file():
        result.note = "no export to score"
        return
    out = Path(result.config.run_dir or "").parent / f"evaluate-{split}"
    saved = out / "metrics.json"
    if saved.is_file() and saved.stat().st_mtime >= (export / "saved_model.pb").stat().st_mtime:
        report = json.loads(saved.read_text())  # this export was scored already
    else:
        try:
            report = evaluate(export, out, split=split)
        except UserError as error:
            result.note = f"not scored: {error}"
            return
    result.step = report["model_metadata"].get("step", result.step)
    result.n_images = report["n_images"]
    result.model = report["means"]["model"]
    result.baseline_kind = report.get("baseline", "grey")  # reports from before paired sets were scored: grey
    result.baseline = report["means"][f"{result.baseline_kind}_baseline"]
    result.target_colorfulness = report["target_colorfulness"]


def run_grid(grid: Grid, configs: dict[str, Config], results_dir: Path, split: str = "test",
             log: Callable[[str], None] = print, seeds: list[int] | None = None) -> list[VariantResult]:
    """Train every variant (once per seed of `seeds`) not finished yet, score every export, write the summary
    files and figures."""
    results_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for (variant, seed), config in seeded_configs(configs, seeds or [], results_dir).items():
        result = VariantResult(variant=variant, changes=describe(grid.variants[variant]), config=config,
                               status="", seed=seed)
        if is_finished(config):
            result.status = "finished earlier (not retrained)"
            log(f"\n=== {result.name}: {result.status} ===")
        else:
            result.status, result.step = train_variant(result.name, config, log)
        score_variant(result, split)
        results.append(result)
    write_reports(grid, results, results_dir, split)
    log(f"\nwrote {results_dir / 'summary.csv'}, summary.md, charts/, comparison.png and gifs/")
    log(summary_markdown(grid, results, split))
    return results


# --- command line -----------------------------------------------------------------------------------------


def list_grids(out: Callable[[str], None] = print) -> None:
    """Every grid, its description, and what each of its variants changes."""
    out(f"experiment grids in {grids_dir()}:")
    for name in grid_names():
        grid = load_grid(name)
        out(f"\n{name}: {grid.description}")
        width = max(len(v) for v in grid.variants)
        for variant, delta in grid.variants.items():
            out(f"  {variant:<{width}}  {describe(delta)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pix2pix_tf.experiments",
                                     description="Rerun the study's experiment grids and compare the variants.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show every grid and what each variant changes")
    run = commands.add_parser(
        "run", help="train, score and compare every variant of a grid",
        epilog=f"Without --steps/--epochs/--epochs-decay each variant trains {DEFAULT_STEPS} steps; --epochs N "
               "alone means N epochs and no decay (the paper: --epochs 100 --epochs-decay 100). Re-running "
               "resumes unfinished variants and skips finished ones.")
    run.add_argument("grid", help="grid name (see `list`) or path to a grid .json file")
    run.add_argument("--results-dir", help="output folder (default: runs/experiments/<grid>-<dataset>)")
    run.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                     help="train every variant once per seed (e.g. --seeds 0 1) and report the spread")
    run.add_argument("--split", default="test", choices=("train", "val", "test"),
                     help="split the evaluator scores and the figure shows (default: test)")
    add_config_arguments(run)
    judge = commands.add_parser(
        "judge", help="judge the variants of several grids against all their paper-defaults runs together",
        description="Pool the paper-defaults runs of several grids run at one budget (the same configuration "
                    "trained in each) and judge every other variant against that pool.")
    judge.add_argument("summaries", nargs="+", type=Path, metavar="SUMMARY",
                       help="a grid's summary.csv or its results folder")
    judge.add_argument("--out", type=Path, help="also write the table to this markdown file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m pix2pix_tf.experiments list | run GRID ... | judge SUMMARY ...`: 0 on success, 2 on a problem
    the user can fix."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        if args.command == "list":
            list_grids()
            return 0
        if args.command == "judge":
            table = pooled_verdicts(args.summaries)
            print(table)
            if args.out:
                args.out.write_text(table + "\n")
            return 0
        grid = load_grid(args.grid)
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                     if getattr(args, f.name, None) is not None}
        results_dir = Path(args.results_dir) if args.results_dir else default_results_dir(grid, args.dataset)
        configs = variant_configs(grid, results_dir, overrides)
        quiet_tensorflow_start(training=True)
        results = run_grid(grid, configs, results_dir, args.split, seeds=args.seeds)
        return 0 if all(not r.status.startswith("failed") for r in results) else 1

    return run_cli("experiments", body, resume_hint="re-run the same command to resume the unfinished variants")


if __name__ == "__main__":
    raise SystemExit(main())
