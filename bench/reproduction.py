"""The study's table over training time: score every kept export of a run on the held-out split, both metric sets.

    python bench/reproduction.py EXPORTS_DIR --data-dir ARCHIVE [--split test] [--out docs/reproduction]

EXPORTS_DIR holds one export per folder (`step_<N>`, as a run in resumable chunks keeps them, each exported by
`train.py` at the end of its chunk). Each is scored by the evaluator on the split (model and grey copy), and
the means go to OUT/trend.csv and OUT/trend.png: the study's SSIM and RMSD and the project's SSIM and CIEDE2000
against epochs, with the grey copy as a line and the study's reported numbers as dashed lines.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The study's reported Open Country numbers (its Avg SSIM and "RMSD").
STUDY = {"ssim_study": 0.879, "rmsd_study_uint8_wrap": 0.665}
PLOTTED = (("ssim_study", "SSIM (study's: scikit-image, 7x7)"), ("rmsd_study_uint8_wrap", "RMSD (study's, wraps)"),
           ("ssim", "SSIM (tf.image.ssim)"), ("ciede2000", "CIEDE2000"))


def score_exports(exports: Path, data_dir: str, split: str, out: Path) -> list[dict[str, float]]:
    """One row per export (sorted by step): step, photos scored and every mean of the model and the grey copy."""
    from pix2pix_tf.evaluate import evaluate

    rows = []
    for folder in sorted(exports.glob("step_*"), key=lambda p: int(re.sub(r"\D", "", p.name))):
        summary = evaluate(folder, out / "reports" / folder.name, data_dir=data_dir, split=split)
        row = {"step": summary["model_metadata"]["step"], "n": summary["n_images"]}
        row |= {f"model_{k}": v for k, v in summary["means"]["model"].items()}
        row |= {f"grey_{k}": v for k, v in summary["means"]["grey_baseline"].items()}
        rows.append(row)
    return rows


def plot(rows: list[dict[str, float]], x: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.2))
    for axis, (key, label) in zip(axes, PLOTTED, strict=True):
        axis.plot([r[x] for r in rows], [r[f"model_{key}"] for r in rows], "o-", label="model")
        axis.axhline(rows[-1][f"grey_{key}"], color="grey", label="grey copy")
        if key in STUDY:
            axis.axhline(STUDY[key], color="black", linestyle="--", label="study (reported)")
        axis.set_title(label, fontsize=9)
        axis.set_xlabel(x)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", type=Path, help="folder of step_<N> exports")
    parser.add_argument("--data-dir", required=True, help="the dataset archive the exports were trained on")
    parser.add_argument("--split", default="test")
    parser.add_argument("--steps-per-epoch", type=int, help="to chart against epochs instead of steps")
    parser.add_argument("--out", type=Path, default=Path("runs/reproduction"))
    args = parser.parse_args(argv)
    rows = score_exports(args.exports, args.data_dir, args.split, args.out)
    if args.steps_per_epoch:
        for row in rows:
            row["epoch"] = row["step"] / args.steps_per_epoch
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "trend.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, "epoch" if "epoch" in rows[0] else "step", args.out / "trend.png")
    for row in rows:
        print(f"step {row['step']}: " + ", ".join(f"{key} {row[f'model_{key}']:.4f} (grey {row[f'grey_{key}']:.4f})"
                                                  for key, _ in PLOTTED))
    print(f"wrote {args.out / 'trend.csv'} and trend.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
