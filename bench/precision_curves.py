"""Do bfloat16 loss curves match fp32? Train the same networks on the same batches in each precision and compare.

    python bench/precision_curves.py [--size 64] [--steps 300] [--batch-size 4] [--out bench/precision_curves]

Runs (each in its own subprocess): fp32 with seed 0, fp32 with seed 1 (the noise floor: how far two fp32 runs
that differ only in initial weights and dropout drift apart), and each other precision with seed 0. All runs
see the same batches of the offline `sample` set (real photos, jitter + mirror, data seed 0). For each loss the
JSON reports every run's mean over the last `--window` steps, the standard error of the fp32 seed-0 mean, and
two gaps: |precision - fp32| at seed 0, and the fp32 seed-0 vs seed-1 gap. Writes OUT.json and OUT.png
(moving averages of each loss).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

LOSSES = ("g_l1", "g_gan", "d_real", "d_fake")


def curve(precision: str, seed: int, size: int, steps: int, batch_size: int) -> dict[str, list[float]]:
    """Per-step losses of one run (inside a child process)."""
    import keras

    from pix2pix_tf import data
    from pix2pix_tf.config import Config
    from pix2pix_tf.training import Trainer

    config = Config(dataset="sample", image_size=size, batch_size=batch_size, precision=precision, seed=0,
                    run_dir="unused")
    keras.utils.set_random_seed(seed)  # initial weights and dropout masks; the batches depend on config.seed
    trainer = Trainer(config)
    history: dict[str, list[float]] = {name: [] for name in LOSSES}
    epoch = 0
    while len(history["g_l1"]) < steps:
        for batch in data.train_dataset(config, epoch):
            result = trainer.train_step(batch)
            trainer.step.assign_add(1)
            for name in LOSSES:
                history[name].append(float(result[name]))
            if len(history["g_l1"]) == steps:
                break
        epoch += 1
    return history


def moving_average(values: list[float], width: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - width] if i >= width else 0.0)
        out.append(total / min(i + 1, width))
    return out


def plot(runs: dict[str, dict[str, list[float]]], path: Path, width: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(LOSSES), figsize=(4 * len(LOSSES), 3.2))
    for axis, name in zip(axes, LOSSES, strict=True):
        for label, history in runs.items():
            axis.plot(moving_average(history[name], width), label=label, linewidth=1.2)
        axis.set_title(f"{name} (moving average of {width})")
        axis.set_xlabel("step")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def summarise(runs: dict[str, dict[str, list[float]]], precisions: list[str], window: int) -> dict[str, Any]:
    """Per loss: each run's mean over the last `window` steps, its standard error, and the gaps between runs."""
    summary: dict[str, Any] = {}
    for name in LOSSES:
        tails = {label: history[name][-window:] for label, history in runs.items()}
        entry = {label: statistics.mean(tail) for label, tail in tails.items()}
        entry["fp32 seed 0 standard error"] = statistics.stdev(tails["fp32 seed 0"]) / len(tails["fp32 seed 0"]) ** 0.5
        entry["fp32 seed gap (noise)"] = abs(entry["fp32 seed 0"] - entry["fp32 seed 1"])
        for precision in precisions:
            entry[f"{precision} vs fp32 gap"] = abs(entry[f"{precision} seed 0"] - entry["fp32 seed 0"])
        summary[name] = entry
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--window", type=int, default=50, help="steps averaged at the end, and plot smoothing")
    parser.add_argument("--precisions", default="mixed_bfloat16", help="compared with fp32, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("bench/precision_curves"))
    parser.add_argument("--_one", dest="one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        precision, seed = args.one.split(":")
        print("CURVE " + json.dumps(curve(precision, int(seed), args.size, args.steps, args.batch_size)))
        return

    runs: dict[str, dict[str, list[float]]] = {}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for precision, seed in [("fp32", 0), ("fp32", 1)] + [(p, 0) for p in args.precisions.split(",")]:
        print(f"  {precision} seed {seed} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, "--_one", f"{precision}:{seed}", "--size", str(args.size),
                               "--steps", str(args.steps), "--batch-size", str(args.batch_size)],
                              capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            raise RuntimeError(f"{precision} seed {seed} failed:\n{done.stderr[-4000:]}")
        line = next(x for x in done.stdout.splitlines() if x.startswith("CURVE "))
        runs[f"{precision} seed {seed}"] = json.loads(line[6:])

    summary = summarise(runs, args.precisions.split(","), args.window)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"options": {k: v for k, v in vars(args).items() if k not in ("one", "out")}, "final_means": summary,
              "runs": runs}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    plot(runs, args.out.with_suffix(".png"), args.window)
    print(f"mean of the last {args.window} of {args.steps} steps ({args.size} px, batch {args.batch_size}):")
    for name, entry in summary.items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in entry.items()))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
