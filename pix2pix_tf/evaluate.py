"""Score an exported model on a dataset split, always beside the "change nothing" baseline.

`python evaluate.py --model saved_models/opencountry --dataset opencountry [--split test] [--data-dir DIR]
[--out DIR] [--limit N]` loads the SavedModel with `tf.saved_model.load` (no model code) and takes each example
of the split as `load_source` delivers it (whole picture, its own aspect ratio; the folder source keeps its
short side at the model's working size). What the model is given and scored against depends on the dataset:

* a colour set (folder, sample, opencountry, ...): the evaluator makes the grey input itself from each photo
  (BT.601 luma for rgb models, CIE L* for lab models, as in training), so no model ever sees colour; the target
  is the photo. Baseline: the **grey copy** (the grey input as RGB: "colorize" by changing nothing).
* a paired set (facades, cityscapes, ...): the model is given one side of each pair (uint8 RGB, B for a BtoA
  model, e.g. the label map, else A) and scored against the other side. Baseline: the **input copy** (the
  input picture itself: "translate" by changing nothing).

Model and baseline are scored against the target with every metric of `pix2pix_tf.metrics`.

Writes OUT/metrics.json (means of the model and of the baseline, under "model" and "grey_baseline" or
"input_baseline"; "baseline": "grey" or "input"; n; the model's metadata), OUT/per_image.csv, OUT/results.png
(INPUT | OUTPUT | TARGET), OUT/side_by_side.png (outputs beside their targets) and prints a table. Default OUT:
runs/<dataset>/evaluate-<split>.
"""

from __future__ import annotations

from pix2pix_tf.cli import quiet_tensorflow_start

quiet_tensorflow_start()  # before TensorFlow's import

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pix2pix_tf.cli import inference_process, run_cli  # noqa: E402
from pix2pix_tf.color import grey_version  # noqa: E402
from pix2pix_tf.config import Config  # noqa: E402
from pix2pix_tf.datasource import write_skipped_list  # noqa: E402
from pix2pix_tf.errors import UserError  # noqa: E402
from pix2pix_tf.export import ExportedModel, load_exported, refusal_reason  # noqa: E402
from pix2pix_tf.metrics import METRICS, SET_METRICS, better, colorfulness, image_metrics, set_metrics  # noqa: E402
from pix2pix_tf.sources import Example, is_paired, resolve_direction, split_examples  # noqa: E402
from pix2pix_tf.visualize import save_comparison_figure, to_uint8  # noqa: E402

SPLIT_CHOICES = ("train", "val", "test", "all")
FIGURE_ROWS = 6
SIDE_BY_SIDE_PHOTOS = 12  # side_by_side.png: this many outputs beside their photos, two pairs a row
SCALES_NOTE = ("ssim (tf.image.ssim) and psnr on RGB in [0, 1]; rmsd_255 on [0, 255], rmsd_01 on [0, 1]; "
               "ciede2000 mean over pixels; colorfulness Hasler & Suesstrunk 2003 on [0, 255]; psnr capped at "
               "100 dB for identical pictures; ssim_study and rmsd_study_uint8_wrap as the original study's "
               "code computes them (scikit-image SSIM, 7x7 uniform window, on uint8 RGB; RMSD of uint8 "
               "differences, which wrap modulo 256); ab_intersection and colorfulness_ratio over the whole set")


@dataclass
class Scores:
    """Per-image rows, and for the model and the baseline (`baseline_kind`: "grey" or "input") the means of the
    per-image metrics and the whole set's SET_METRICS."""

    rows: list[dict[str, Any]]
    model: dict[str, float]
    baseline: dict[str, float]
    target_colorfulness: float
    baseline_kind: str = "grey"

    @property
    def n(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Task:
    """What a model is asked to do on a dataset: colorize grey photos, or translate one side of a pair."""

    paired: bool
    color_space: str  # colour sets: the grey a model of this colour space was trained on
    direction: str  # paired sets: AtoB (A in, B scored against) or BtoA

    @property
    def baseline_kind(self) -> str:
        """"grey" (the grey copy) for colour sets, "input" (the input copy) for paired sets."""
        return "input" if self.paired else "grey"

    def case(self, example: Example) -> tuple[np.ndarray, np.ndarray]:
        """(what the model is given, what it is scored against) for one example, both uint8."""
        if not self.paired:
            return grey_version(example["image"], self.color_space), example["image"]
        return (example["b"], example["a"]) if self.direction == "BtoA" else (example["a"], example["b"])


def task_for(model: ExportedModel, config: Config) -> Task:
    """The Task of `model` on `config`'s dataset (the direction: the config's, else the dataset's usual one)."""
    return Task(paired=is_paired(config), color_space=model.color_space, direction=resolve_direction(config))


def score_pairs(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], inputs: Sequence[np.ndarray],
                names: Sequence[str] | None = None, baseline_kind: str = "grey") -> Scores:
    """Score each output and each input as RGB (the baseline: the grey copy of a colour photo, or a paired
    example's input copy) against its target; uint8 pictures of equal size."""
    if not len(outputs) == len(targets) == len(inputs) > 0:
        raise ValueError(f"need equally many outputs, targets and inputs (got {len(outputs)}, {len(targets)}, "
                         f"{len(inputs)}), at least one")
    baselines = [to_uint8(network_input) for network_input in inputs]
    rows = []
    for index, (output, target, baseline) in enumerate(zip(outputs, targets, baselines, strict=True)):
        row: dict[str, Any] = {"name": names[index] if names else f"{index:05d}",
                               "height": target.shape[0], "width": target.shape[1]}
        row |= {f"model_{k}": v for k, v in image_metrics(output, target).items()}
        row |= {f"baseline_{k}": v for k, v in image_metrics(baseline, target).items()}
        row["target_colorfulness"] = colorfulness(target)
        rows.append(row)

    def mean(key: str) -> float:
        return float(np.mean([row[key] for row in rows]))

    return Scores(rows=rows, model={k: mean(f"model_{k}") for k in METRICS} | set_metrics(outputs, targets),
                  baseline={k: mean(f"baseline_{k}") for k in METRICS} | set_metrics(baselines, targets),
                  target_colorfulness=mean("target_colorfulness"), baseline_kind=baseline_kind)


def format_table(scores: Scores) -> str:
    """Model vs baseline (grey or input copy), one row per metric."""
    lines = [f"{'metric':<28}{'model':>10}{scores.baseline_kind + ' baseline':>16}   better", "-" * 62]
    for key, (label, _) in (METRICS | SET_METRICS).items():
        lines.append(f"{label:<28}{scores.model[key]:>10.4f}{scores.baseline[key]:>16.4f}   {better(key)}")
    lines.append(f"(target photos' mean colourfulness: {scores.target_colorfulness:.2f}; n = {scores.n})")
    return "\n".join(lines)


def source_config(model: ExportedModel, dataset: str | None, data_dir: str | None) -> Config:
    """The model's own training Config (when it carries one) pointed at the dataset to score, for scoring."""
    known = {f.name for f in dataclasses.fields(Config)}
    saved = {k: v for k, v in model.metadata.get("config", {}).items() if k in known}
    if not saved and not dataset:
        raise UserError(f"{model.path} carries no pix2pix-tf metadata; say which photos to score with --dataset")
    try:
        config = Config.from_dict(saved).for_scoring()
        if dataset:
            config = config.replace(dataset=dataset, data_dir=data_dir)
        elif data_dir:
            config = config.replace(data_dir=data_dir)
    except ValueError as error:
        raise UserError(str(error)) from error
    return config


@dataclass
class Outcome:
    """What the model made of the examples it accepted (parallel lists), and the ones it refused."""

    names: list[str]
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    targets: list[np.ndarray]
    refused: list[str]


def run_model(model: ExportedModel, task: Task, examples: list[tuple[str, Example]]) -> Outcome:
    """Give the model each example's input (its serving signature, uint8 in and out)."""
    from tqdm import tqdm

    outcome = Outcome([], [], [], [], [])
    for name, example in tqdm(examples, desc="translating" if task.paired else "colorizing", unit="img"):
        network_input, target = task.case(example)
        try:
            outcome.outputs.append(model.colorize(network_input))
        except tf.errors.InvalidArgumentError as error:
            outcome.refused.append(f"{name}: {refusal_reason(error)}")
            continue
        outcome.names.append(name)
        outcome.inputs.append(network_input)
        outcome.targets.append(target)
    return outcome


def write_report(out: Path, summary: dict[str, Any], scores: Scores, outcome: Outcome) -> None:
    """metrics.json, per_image.csv, results.png (INPUT | OUTPUT | TARGET, each row's SSIM beside the
    baseline's) and side_by_side.png (up to 12 outputs, each beside its target)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    with open(out / "per_image.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(scores.rows[0]))
        writer.writeheader()
        writer.writerows(scores.rows)
    shown = range(min(FIGURE_ROWS, scores.n))
    save_comparison_figure(
        [[outcome.inputs[i], outcome.outputs[i], outcome.targets[i]] for i in shown], ["INPUT", "OUTPUT", "TARGET"],
        out / "results.png",
        row_labels=[f"{outcome.names[i][-24:]}\nSSIM {scores.rows[i]['model_ssim']:.3f} "
                    f"({scores.baseline_kind} {scores.rows[i]['baseline_ssim']:.3f})" for i in shown])
    pairs = [[outcome.outputs[i], outcome.targets[i]] for i in range(min(SIDE_BY_SIDE_PHOTOS, scores.n))]
    save_comparison_figure([sum(pairs[i:i + 2], []) for i in range(0, len(pairs), 2)],
                           ["OUTPUT", "TARGET", "OUTPUT", "TARGET"][:2 * min(2, len(pairs))], out / "side_by_side.png")


def evaluate(model_dir: str | Path, out_dir: str | Path | None = None, dataset: str | None = None,
             data_dir: str | None = None, split: str = "test", limit: int | None = None) -> dict[str, Any]:
    """Score the model and its baseline on a split; write the report files; return metrics.json's content."""
    model = load_exported(model_dir)
    config = source_config(model, dataset, data_dir)
    out = Path(out_dir) if out_dir else config.resolved_run_dir() / f"evaluate-{split}"
    examples, files_skipped = split_examples(config, split, limit)
    if not examples:
        raise UserError(f"the {split} split of {config.dataset} has no examples to score")
    task = task_for(model, config)
    outcome = run_model(model, task, examples)
    if not outcome.outputs:
        raise UserError(f"the model refused every example, e.g. {outcome.refused[0]}")
    scores = score_pairs(outcome.outputs, outcome.targets, outcome.inputs, outcome.names, task.baseline_kind)
    summary: dict[str, Any] = {
        "model_dir": str(model_dir), "dataset": config.dataset, "split": split, "n_images": scores.n,
        "refused_by_model": outcome.refused, "files_skipped_by_source": files_skipped,
        "files_skipped_count": len(files_skipped),
        "baseline": task.baseline_kind,
        "means": {"model": scores.model, f"{task.baseline_kind}_baseline": scores.baseline},
        "target_colorfulness": scores.target_colorfulness, "scales": SCALES_NOTE,
        "model_metadata": model.metadata,
    }
    write_report(out, summary, scores, outcome)
    print(format_table(scores))
    if files_skipped:
        listed = write_skipped_list(out, files_skipped)
        print(f"skipped {len(files_skipped)} image file(s) that could not be used (all listed in {listed})")
    if outcome.refused:
        print(f"{len(outcome.refused)} example(s) refused by the model (listed in metrics.json)")
    print(f"wrote {out / 'metrics.json'}, per_image.csv, results.png and side_by_side.png")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="SavedModel folder (e.g. saved_models/opencountry)")
    parser.add_argument("--dataset", help="dataset to score (default: the one the model was trained on)")
    parser.add_argument("--data-dir", help="dataset archive / folder (for --dataset folder: the photos)")
    parser.add_argument("--split", default="test", choices=SPLIT_CHOICES,
                        help="split to score (all: every split, each photo once); default test")
    parser.add_argument("--out", help="report folder (default: runs/<dataset>/evaluate-<split>)")
    parser.add_argument("--limit", type=int, help="score at most N photos")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`pix2pix-evaluate`: exit 0 on success, 2 on a problem the user can fix."""
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        build_parser().error("--limit must be at least 1")

    def body() -> int:
        evaluate(args.model, args.out, args.dataset, args.data_dir, args.split, args.limit)
        return 0

    return run_cli("evaluate.py", body)


def inference_process_main(argv: list[str] | None = None) -> int:
    """`pix2pix-evaluate` as a process of its own, which never trains (`cli.inference_process`)."""
    return inference_process(main, argv)


if __name__ == "__main__":
    raise SystemExit(inference_process_main())
