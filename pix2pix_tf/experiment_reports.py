"""An experiment grid's reports: summary.csv and summary.md, the bar charts, the side-by-side figure and the
progress GIFs of its variants (`pix2pix_tf.experiments` runs the grid)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError
from pix2pix_tf.metrics import IDEAL_VALUES, METRICS, SET_METRICS, better

if TYPE_CHECKING:
    from pix2pix_tf.experiments import Grid, VariantResult

FIGURE_ROWS = 4
SCORES = METRICS | SET_METRICS  # what the evaluator reports per variant: per-image means, then whole-set scores
VERDICT_SCORES = ("ssim_study", "ciede2000", "ab_intersection", "colorfulness_ratio")  # judged against the spread


def judged(key: str, values: list[float]) -> tuple[list[float], bool]:
    """What a verdict or a table's bold compares for score `key`, and whether higher is better: the values
    themselves, or for a score with an ideal value their distances from it (lower is better)."""
    if key in IDEAL_VALUES:
        return [abs(v - IDEAL_VALUES[key]) for v in values], False
    return values, SCORES[key][1]


def direction(key: str) -> str:
    """The arrow a table's header gives score `key`: ↑, ↓, or → its ideal value."""
    way = better(key)
    return {"higher": "↑", "lower": "↓"}.get(way, way.replace("nearer", "→"))


def verdict_label(key: str) -> str:
    label = SCORES[key][0]
    return f"{label}, distance from {IDEAL_VALUES[key]:g}" if key in IDEAL_VALUES else label


def describe_budget(config: Config) -> str:
    """What a variant trains for and at what size, e.g. "sample, 200 steps, 128 px, batch 4, ngf/ndf 64/64"."""
    budget = f"{config.steps} steps" if config.steps else f"{config.epochs}+{config.epochs_decay} epochs"
    return (f"{config.dataset}, {budget}, {config.image_size} px, batch {config.batch_size}, "
            f"ngf/ndf {config.ngf}/{config.ndf}")


def write_reports(grid: Grid, results: list[VariantResult], results_dir: Path, split: str) -> None:
    """summary.csv, summary.md, the bar charts, the side-by-side figure and the GIFs."""
    write_csv(results, results_dir / "summary.csv")
    (results_dir / "summary.md").write_text(summary_markdown(grid, results, split) + "\n")
    scored = [r for r in results if r.scored]
    if scored:
        save_bar_charts(scored, results_dir / "charts", f"{grid.name}: {split} split")
        first_seed = scored[0].seed  # the figure shows one seed of each variant
        save_side_by_side([r for r in scored if r.seed == first_seed], split, results_dir / "comparison.png")
    gifs = results_dir / "gifs"
    for result in results:
        progress = Path(result.config.run_dir or "") / "progress.gif"
        if progress.is_file():
            gifs.mkdir(exist_ok=True)
            suffix = "" if result.seed is None else f".seed{result.seed}"
            shutil.copyfile(progress, gifs / f"{result.variant}{suffix}.gif")


def write_csv(results: list[VariantResult], path: Path) -> None:
    columns = ["variant", "seed", "changes", "status", "note", "dataset", "image_size", "step", "n_images", "baseline",
               *(f"model_{k}" for k in SCORES), *(f"baseline_{k}" for k in SCORES), "target_colorfulness",
               "export_dir"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for r in results:
            writer.writerow({
                "variant": r.variant, "seed": "" if r.seed is None else r.seed, "changes": r.changes,
                "status": r.status, "note": r.note,
                "dataset": r.config.dataset, "image_size": r.config.image_size, "step": r.step,
                "n_images": r.n_images, "baseline": r.baseline_kind if r.scored else "",
                **{f"model_{k}": v for k, v in r.model.items()},
                **{f"baseline_{k}": v for k, v in r.baseline.items()},
                "target_colorfulness": r.target_colorfulness, "export_dir": r.config.export_dir})


def by_variant(results: list[VariantResult]) -> dict[str, list[VariantResult]]:
    """The results of each variant (one per seed), in the grid's order."""
    groups: dict[str, list[VariantResult]] = {}
    for result in results:
        groups.setdefault(result.variant, []).append(result)
    return groups


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summary_markdown(grid: Grid, results: list[VariantResult], split: str) -> str:
    """A markdown table, one row per variant: each metric as "model (baseline)", the best model value in bold;
    with several seeds the model's mean over them ± half their range, then each variant against the
    reference."""
    scored = [r for r in results if r.scored]
    groups = by_variant(scored)
    seeded = any(r.seed is not None for r in results)
    lines = [f"### {grid.name}", "", grid.description, ""]
    if results:
        seeds = sorted({r.seed for r in results if r.seed is not None})
        spread = (f"; seeds {', '.join(map(str, seeds))}: each model value is the mean over the seeds ± half "
                  "their range") if seeded else ""
        lines += [f"Budget: {describe_budget(results[0].config)}. Scored on the {split} split "
                  f"({', '.join(sorted({str(r.n_images) for r in scored})) or 'no'} image(s)){spread}; each "
                  f"cell is model ({baseline_label(scored)}); best model value in bold.", ""]
    header = ["variant", "changes", "step", *(f"{label} {direction(key)}" for key, (label, _) in SCORES.items())]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    means = {name: {k: _mean([r.model[k] for r in runs]) for k in SCORES} for name, runs in groups.items()}
    best: dict[str, float] = {}
    for k in SCORES if means else ():
        compared, higher = judged(k, [m[k] for m in means.values()])
        best[k] = [m[k] for m in means.values()][compared.index((max if higher else min)(compared))]
    for name, runs in by_variant(results).items():
        done = [r for r in runs if r.scored]
        steps = sorted({str(r.step) for r in runs if r.step is not None}) or ["-"]
        if done:
            cells = []
            for k in SCORES:
                value = f"{means[name][k]:.4f}"
                cell = f"**{value}**" if len(means) > 1 and means[name][k] == best[k] else value
                if seeded:
                    values = [r.model[k] for r in done]
                    cell += f" ±{(max(values) - min(values)) / 2:.4f}"
                cells.append(cell + f" ({done[0].baseline[k]:.4f})")
        else:
            cells = [runs[0].note or runs[0].status] + [""] * (len(SCORES) - 1)
        lines.append("| " + " | ".join([name, runs[0].changes, "/".join(steps), *cells]) + " |")
    if seeded and len(groups) > 1:
        lines += ["", *verdicts(groups)]
    unfinished = [f"{r.name}: {r.status}" for r in results if r.status.startswith(("failed", "stopped"))]
    if unfinished:
        lines += ["", *unfinished]
    return "\n".join(lines)


def verdicts(groups: dict[str, list[VariantResult]]) -> list[str]:
    """Each variant against the reference (the "paper defaults" variant, else the first), per score of
    VERDICT_SCORES: "better" or "worse" when the two ranges over the seeds do not overlap, else "within seed
    noise"."""
    names = list(groups)
    reference = next((n for n in names if groups[n][0].changes == "paper defaults"), names[0])
    lines = [f"Against {reference} (better / worse: the seeds' ranges do not overlap):", ""]
    for name in names:
        if name == reference:
            continue
        parts = []
        for key in VERDICT_SCORES:
            ours, higher = judged(key, [r.model[key] for r in groups[name]])
            theirs, _ = judged(key, [r.model[key] for r in groups[reference]])
            parts.append(f"{verdict_label(key)} {judge(ours, theirs, higher)}")
        lines.append(f"- {name}: " + "; ".join(parts))
    return lines


def judge(ours: list[float], theirs: list[float], higher: bool) -> str:
    """"better" or "worse" when the ranges of `ours` and `theirs` do not overlap, else "within seed noise";
    with the difference of their means, e.g. "better (+0.0120)"."""
    difference = _mean(ours) - _mean(theirs)
    if min(ours) > max(theirs) or max(ours) < min(theirs):
        verdict = "better" if (difference > 0) == higher else "worse"
    else:
        verdict = "within seed noise"
    return f"{verdict} ({difference:+.4f})"


def read_summary(path: Path) -> list[dict[str, Any]]:
    """The scored rows of a grid's summary.csv (`path` is the file or its folder), each labelled with its
    grid (the folder's name) and its scores as floats."""
    path = path / "summary.csv" if path.is_dir() else path
    if not path.is_file():
        raise UserError(f"{path}: no such summary.csv (run the grid first)")
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(f"model_{VERDICT_SCORES[0]}")]
    for row in rows:
        row["grid"] = path.parent.name
        row.update({f"model_{k}": float(row[f"model_{k}"]) for k in VERDICT_SCORES})
    return rows


def pooled_verdicts(paths: list[Path]) -> str:
    """A markdown table judging every variant of several grids' summaries against all of their
    paper-defaults runs pooled: the same configuration trained in each grid, so its runs together show the
    spread better than one grid's seeds. The grids must share dataset, image size and step."""
    rows = [row for path in paths for row in read_summary(path)]
    budgets = {(row["dataset"], row["image_size"], row["step"]) for row in rows}
    if len(budgets) > 1:
        raise UserError("the summaries were trained at different budgets (dataset, image size, step): "
                        + ", ".join("/".join(b) for b in sorted(budgets)))
    reference = [row for row in rows if row["changes"] == "paper defaults"]
    if not reference:
        raise UserError("none of the summaries has a paper-defaults variant to judge against")
    grids = sorted({row["grid"] for row in reference})
    spans = "; ".join(f"{SCORES[k][0]} {min(r[f'model_{k}'] for r in reference):.4f}-"
                      f"{max(r[f'model_{k}'] for r in reference):.4f}" for k in VERDICT_SCORES)
    lines = [f"Reference: the paper defaults, {len(reference)} runs from {', '.join(grids)} ({spans}). "
             "Better / worse: the variant's runs and the reference's do not overlap.", "",
             "| grid | variant | changes | runs | " + " | ".join(verdict_label(k) for k in VERDICT_SCORES) + " |",
             "|" + "---|" * (4 + len(VERDICT_SCORES))]
    variants: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["changes"] != "paper defaults":
            variants.setdefault((row["grid"], row["variant"]), []).append(row)
    for (grid, variant), runs in variants.items():
        cells = [judge(judged(k, [r[f"model_{k}"] for r in runs])[0], *judged(k, [r[f"model_{k}"] for r in reference]))
                 for k in VERDICT_SCORES]
        lines.append(f"| {grid} | {variant} | {runs[0]['changes']} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baseline_label(results: list[VariantResult]) -> str:
    """What the scored `results` were compared with, as the evaluator named it: "grey baseline", "input
    baseline", or "grey / input baseline" for a grid of colour and paired sets (summary.csv says which row)."""
    kinds = sorted({r.baseline_kind for r in results if r.scored})
    return f"{' / '.join(kinds)} baseline" if kinds else "baseline"


def _bar_panel(ax: Any, results: list[VariantResult], key: str) -> None:
    import numpy as np

    label = SCORES[key][0]
    x = np.arange(len(results))
    for offset, values, name, colour in ((-0.2, [r.model[key] for r in results], "model", "tab:blue"),
                                         (0.2, [r.baseline[key] for r in results], baseline_label(results), "0.6")):
        bars = ax.bar(x + offset, values, 0.4, label=name, color=colour)
        ax.bar_label(bars, fmt="%.3g", fontsize=6)
    if key == "colorfulness":  # each variant's targets (variants of a grid may read different data)
        ax.hlines([r.target_colorfulness for r in results], x - 0.45, x + 0.45, colors="tab:green",
                  linestyles="--", linewidth=1, label="targets")
    ax.set_xticks(x, [r.name for r in results], rotation=20, ha="right", fontsize=8)
    ax.set_title(f"{label} ({better(key)} is better)", fontsize=9)


def save_bar_charts(results: list[VariantResult], folder: Path, title: str) -> None:
    """charts/<metric>.png per metric and charts/all_metrics.png: model beside baseline per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    width = max(4.0, 1.1 * len(results) + 2)
    for key in SCORES:
        fig, ax = plt.subplots(figsize=(width, 3.2))
        _bar_panel(ax, results, key)
        ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(folder / f"{key}.png", dpi=100)
        plt.close(fig)
    columns = 3
    rows = -(-len(SCORES) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns * 0.8, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, SCORES, strict=False):
        _bar_panel(ax, results, key)
    for ax in list(axes.flat)[len(SCORES):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / "all_metrics.png", dpi=100)
    plt.close(fig)


def save_side_by_side(results: list[VariantResult], split: str, path: Path) -> None:
    """INPUT | each variant's output | TARGET on the first FIGURE_ROWS examples of `split`, for every export.
    When the variants read different data (a grid that varies the dataset or the direction, as `paired`
    does), each variant gets rows of its own examples instead: INPUT | OUTPUT | TARGET."""
    from pix2pix_tf.visualize import save_comparison_figure

    same_data = len({(r.config.dataset, r.config.data_dir, r.config.direction) for r in results}) == 1
    groups = [results] if same_data else [[r] for r in results]
    rows: list[list[Any]] = []
    labels: list[str] = []
    for group in groups:
        for name, row in _comparison_rows(group, split, max(1, FIGURE_ROWS // len(groups))):
            rows.append(row)
            labels.append(name[-24:] if same_data else f"{group[0].name}\n{name[-24:]}")
    titles = ["INPUT", *(r.name for r in results), "TARGET"] if same_data else ["INPUT", "OUTPUT", "TARGET"]
    save_comparison_figure(rows, titles, path, row_labels=labels)


def _comparison_rows(group: list[VariantResult], split: str, count: int) -> list[tuple[str, list[Any]]]:
    """(name, [input, each variant's output, target]) for the first `count` examples of `split`; the variants
    of `group` read the same data (the input shown is the first variant's)."""
    from pix2pix_tf.evaluate import source_config, task_for
    from pix2pix_tf.export import load_exported
    from pix2pix_tf.sources import split_examples

    models = [load_exported(r.config.resolved_export_dir()) for r in group]
    config = source_config(models[0], None, None)
    tasks = [task_for(model, config) for model in models]
    examples, _ = split_examples(config, split, count)
    rows = []
    for name, example in examples:
        cases = [task.case(example) for task in tasks]
        outputs = [model.colorize(network_input) for model, (network_input, _) in zip(models, cases, strict=True)]
        rows.append((name, [cases[0][0], *outputs, cases[0][1]]))
    return rows
