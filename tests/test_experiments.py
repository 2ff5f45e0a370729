"""experiments: every study grid is listed; a tiny grid runs end to end; a resumed grid retrains nothing; a
tiny paired grid is scored against the input copy; with several seeds each variant trains once per seed and is
judged against the seeds' spread."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import write_paired_tar

from pix2pix_tf import experiment_reports, experiments
from pix2pix_tf.errors import UserError
from pix2pix_tf.metrics import METRICS

PhotoFolderFactory = Callable[..., Path]
STUDY_VARIANTS = {
    "generator": {"unet", "encoder_decoder"},
    "lambda": {"lambda20", "lambda100", "lambda200"},
    "augmentation": {"jitter_mirror", "random_crops", "inversion", "crops_inversion"},
    "fuzzy_labels": {"sharp_labels", "fuzzy_labels"},
    "d_batchnorm_dropout": {"d_plain", "d_batchnorm", "d_batchnorm_dropout"},
    "update_ratio": {"d1_g1", "d2_g1", "d1_g2"},
    "g_only": {"joint", "g_only_1_epoch", "g_only_5_epochs"},
    "g_learning_rate": {"lr_g_2e-4", "lr_g_4e-4", "lr_g_1e-3"},
    "paired": {"facades", "cityscapes"},
}
COLOUR_VARIANTS = {"colour_levers": {"lab_regress", "lab_no_average",
                                    "lab_sharp_labels", "lab_unfiltered"}}  # the colorization recipe's levers
TINY = ["--dataset", "folder", "--image-size", "32", "--ngf", "4", "--ndf", "4", "--batch-size", "4",
        "--steps", "3", "--progress-samples", "2"]


def test_list_names_every_variant_of_every_grid(capsys: pytest.CaptureFixture[str]) -> None:
    assert experiments.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert set(experiments.grid_names()) == set(STUDY_VARIANTS) | set(COLOUR_VARIANTS)
    for grid, variants in (STUDY_VARIANTS | COLOUR_VARIANTS).items():
        assert f"\n{grid}: " in listing
        assert set(experiments.load_grid(grid).variants) == variants
        for variant in variants:
            assert f"  {variant} " in listing
    for change in ["generator=encoder_decoder", "lambda_l1=20", "lambda_l1=200", "zoom_crop=0.5", "vflip=True",
                   "label_fuzz=0.1", "d_norm=batch, d_dropout=0.5", "d_steps=2", "g_steps=2", "g_only_epochs=1",
                   "g_only_epochs=5", "lr_g=0.001", "dataset=facades, direction=BtoA",
                   "dataset=cityscapes, direction=BtoA", "chroma_smoothing=1"]:
        assert change in listing


def test_bad_grids_and_clashing_flags_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"variants": {"a": {"lamda_l1": 5}}}))
    with pytest.raises(UserError, match="unknown config field.*lamda_l1"):
        experiments.load_grid(str(bad))
    bad.write_text(json.dumps({"variants": {"a": {"generator": "resnet"}}}))
    with pytest.raises(UserError, match="generator='resnet'"):
        experiments.load_grid(str(bad))
    with pytest.raises(UserError, match="unknown grid 'nope'"):
        experiments.load_grid("nope")
    lam = experiments.load_grid("lambda")
    with pytest.raises(UserError, match="--lambda-l1 would override"):
        experiments.variant_configs(lam, tmp_path, {"lambda_l1": 50.0})
    with pytest.raises(UserError, match="--dataset, --data-dir"):
        experiments.variant_configs(experiments.load_grid("paired"), tmp_path, {"dataset": "x", "data_dir": "y"})
    configs = experiments.variant_configs(lam, tmp_path / "out", {"dataset": "folder", "image_size": 64})
    assert {name: c.lambda_l1 for name, c in configs.items()} == {"lambda20": 20, "lambda100": 100,
                                                                    "lambda200": 200}
    assert all(c.steps == experiments.DEFAULT_STEPS and c.image_size == 64 for c in configs.values())
    assert configs["lambda20"].export_dir == str(tmp_path / "out" / "lambda20" / "model")
    by_epochs = experiments.variant_configs(lam, tmp_path, {"epochs": 3})["lambda100"]
    assert (by_epochs.steps, by_epochs.epochs, by_epochs.epochs_decay) == (None, 3, 0)
    paired = experiments.variant_configs(experiments.load_grid("paired"), tmp_path, {})
    assert {c.dataset for c in paired.values()} == {"facades", "cityscapes"}


@pytest.mark.slow
def test_tiny_grid_end_to_end_then_resumed_without_retraining(tmp_path: Path,
                                                              make_photo_folder: PhotoFolderFactory) -> None:
    grid_file = tmp_path / "tiny.json"
    grid_file.write_text(json.dumps({"description": "two tiny variants",
                                     "variants": {"base": {}, "l20": {"lambda_l1": 20}}}))
    photos = make_photo_folder(12)
    results = tmp_path / "results"
    argv = ["run", str(grid_file), *TINY, "--data-dir", str(photos), "--results-dir", str(results)]
    assert experiments.main(argv) == 0

    with open(results / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["variant"] for row in rows] == ["base", "l20"]
    for row in rows:
        assert row["status"] == "trained" and row["step"] == "3" and int(row["n_images"]) >= 1
        assert all(math.isfinite(float(row[f"{who}_{key}"])) for who in ("model", "baseline") for key in METRICS)
        assert float(row["baseline_colorfulness"]) == 0.0
    assert rows[0]["baseline_ssim"] == rows[1]["baseline_ssim"]  # the same photos for every variant
    table = (results / "summary.md").read_text()
    assert "| base | paper defaults | 3 |" in table and "| l20 | lambda_l1=20 | 3 |" in table
    for name in [*(f"charts/{k}.png" for k in METRICS), "charts/all_metrics.png", "comparison.png",
                 "gifs/base.gif", "gifs/l20.gif"]:
        assert (results / name).stat().st_size > 0, name
    exported = {name: (results / name / "model" / "saved_model.pb").stat().st_mtime_ns for name in ("base", "l20")}

    assert experiments.main(argv) == 0  # finished variants are neither trained nor exported again
    with open(results / "summary.csv") as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == ["finished earlier (not retrained)"] * 2
    assert exported == {name: (results / name / "model" / "saved_model.pb").stat().st_mtime_ns
                        for name in ("base", "l20")}


@pytest.mark.slow
def test_tiny_paired_grid_is_scored_beside_the_input_copy(tmp_path: Path, tfds_dir: Path) -> None:
    archive = write_paired_tar(tmp_path / "facades.tar.gz", "facades", {"train": 2, "val": 1, "test": 2})
    grid_file = tmp_path / "paired.json"
    grid_file.write_text(json.dumps({"description": "both directions of a tiny facades", "variants": {
        direction: {"dataset": "facades", "direction": direction, "data_dir": str(archive)}
        for direction in ("BtoA", "AtoB")}}))
    results = tmp_path / "results"
    assert experiments.main(["run", str(grid_file), "--image-size", "32", "--ngf", "4", "--ndf", "4", "--steps",
                             "2", "--progress-samples", "1", "--results-dir", str(results)]) == 0

    with open(results / "summary.csv") as handle:
        rows = {row["variant"]: row for row in csv.DictReader(handle)}
    for row in rows.values():
        assert row["status"] == "trained" and row["n_images"] == "2" and row["baseline"] == "input"
        assert all(math.isfinite(float(row[f"{who}_{key}"])) for who in ("model", "baseline") for key in METRICS)
    # the input copy: B scored against A, and A against B (the same distance, the input's own colourfulness)
    assert float(rows["BtoA"]["baseline_rmsd_255"]) == pytest.approx(float(rows["AtoB"]["baseline_rmsd_255"]))
    assert rows["BtoA"]["baseline_colorfulness"] != rows["AtoB"]["baseline_colorfulness"]
    assert "each cell is model (input baseline)" in (results / "summary.md").read_text()
    for name in ["charts/all_metrics.png", "comparison.png", "BtoA/evaluate-test/results.png"]:
        assert (results / name).stat().st_size > 0, name


def test_seeds_train_each_variant_once_per_seed_and_judge_against_the_spread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grid_file = tmp_path / "tiny.json"
    grid_file.write_text(json.dumps({"description": "three variants", "variants": {
        "ref": {}, "sharper": {"lambda_l1": 20}, "same": {"lambda_l1": 50}}}))
    trained: list[tuple[str | None, int, str]] = []

    def fake_train(name: str, config: object, log: object) -> tuple[str, int]:
        trained.append((config.run_dir, config.seed, config.export_dir))  # type: ignore[attr-defined]
        return "trained", 3

    # per variant, seeds 0 and 1: "sharper" is better than "ref" on CIEDE2000 beyond both seeds, "same" is not
    ciede = {("ref", 0): 10.0, ("ref", 1): 11.0, ("sharper", 0): 8.0, ("sharper", 1): 8.5,
             ("same", 0): 10.5, ("same", 1): 12.0}

    def fake_score(result: experiments.VariantResult, split: str) -> None:
        assert result.seed is not None
        result.n_images = 5
        result.model = {k: 0.5 for k in experiment_reports.SCORES} | {"ciede2000": ciede[result.variant,
                                                                                          result.seed]}
        result.baseline = {k: 0.25 for k in experiment_reports.SCORES}
        result.target_colorfulness = 40.0

    shown: list[list[str]] = []
    monkeypatch.setattr(experiments, "train_variant", fake_train)
    monkeypatch.setattr(experiments, "score_variant", fake_score)
    monkeypatch.setattr(experiment_reports, "save_side_by_side",
                        lambda results, split, path: shown.append([r.name for r in results]))
    results = tmp_path / "results"
    assert experiments.main(["run", str(grid_file), "--dataset", "folder", "--data-dir", str(tmp_path),
                             "--steps", "3", "--seeds", "0", "1", "--results-dir", str(results)]) == 0

    assert sorted((run_dir, seed) for run_dir, seed, _ in trained) == sorted(
        (str(results / name / f"seed{seed}" / "run"), seed) for name in ("ref", "sharper", "same") for seed in (0, 1))
    assert all(export.endswith(f"seed{seed}/model") for _, seed, export in trained)
    with open(results / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["variant"], row["seed"]) for row in rows] == [
        ("ref", "0"), ("ref", "1"), ("sharper", "0"), ("sharper", "1"), ("same", "0"), ("same", "1")]
    assert shown == [["ref seed 0", "sharper seed 0", "same seed 0"]]  # one seed per variant in the figure
    table = (results / "summary.md").read_text()
    assert "seeds 0, 1: each model value is the mean over the seeds ± half their range" in table
    assert "| ref | paper defaults | 3 |" in table
    assert "| **8.2500** ±0.2500 (0.2500) |" in table  # sharper's CIEDE2000: mean, half range, baseline
    assert "Against ref " in table
    assert "- sharper: " in table and "CIEDE2000 better (-2.2500)" in table
    assert "- same: " in table and "CIEDE2000 within seed noise (+0.7500)" in table
    assert "SSIM (study) within seed noise (+0.0000)" in table
    with pytest.raises(UserError, match="each seed once"):
        experiments.seeded_configs({"ref": experiments.defaults_for("folder")}, [1, 1], results)


def _write_summary(folder: Path, rows: list[tuple[str, str, float]], step: int = 1500,
                   ratios: list[float] | None = None) -> None:
    """A grid's summary.csv with one row per (variant, changes, CIEDE2000); every other score 0.5, or the
    colourfulness ratio of each row from `ratios`."""
    folder.mkdir(parents=True)
    scores = {f"model_{k}": 0.5 for k in experiment_reports.VERDICT_SCORES}
    with open(folder / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["variant", "seed", "changes", "dataset", "image_size", "step",
                                                    *scores])
        writer.writeheader()
        for seed, (variant, changes, ciede) in enumerate(rows):
            writer.writerow({"variant": variant, "seed": seed % 2, "changes": changes, "dataset": "opencountry",
                             "image_size": 128, "step": step, **scores, "model_ciede2000": ciede,
                             **({"model_colorfulness_ratio": ratios[seed]} if ratios else {})})


def test_judge_pools_the_paper_defaults_runs_of_several_grids(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    defaults = "paper defaults"
    _write_summary(tmp_path / "lambda", [("lambda100", defaults, 10.0), ("lambda100", defaults, 11.0),
                                         ("lambda20", "lambda_l1=20", 8.0), ("lambda20", "lambda_l1=20", 8.5)])
    # against its own grid's reference (12-12.5) lr_g_4e-4 looks better; against the pool (10-12.5) it is not
    _write_summary(tmp_path / "g_learning_rate", [("lr_g_2e-4", defaults, 12.0), ("lr_g_2e-4", defaults, 12.5),
                                                  ("lr_g_4e-4", "lr_g=0.0004", 11.5),
                                                  ("lr_g_4e-4", "lr_g=0.0004", 11.9)])
    out = tmp_path / "verdicts.md"
    assert experiments.main(["judge", str(tmp_path / "lambda" / "summary.csv"), str(tmp_path / "g_learning_rate"),
                             "--out", str(out)]) == 0
    table = out.read_text()
    assert table.strip() == capsys.readouterr().out.strip()
    assert "the paper defaults, 4 runs from g_learning_rate, lambda (" in table
    assert "CIEDE2000 10.0000-12.5000" in table
    assert "| lambda | lambda20 | lambda_l1=20 | 2 | within seed noise (+0.0000) |" in table
    assert "| better (-3.1250) |" in table  # lambda20's CIEDE2000 against the pool's mean of 11.375
    assert "| g_learning_rate | lr_g_4e-4 | lr_g=0.0004 | 2 |" in table
    assert "| within seed noise (+0.3250) |" in table

    _write_summary(tmp_path / "short", [("ref", defaults, 9.0)], step=200)
    assert experiments.main(["judge", str(tmp_path / "lambda"), str(tmp_path / "short")]) == 2
    assert "different budgets" in capsys.readouterr().err
    assert experiments.main(["judge", str(tmp_path / "missing")]) == 2
    assert "no such summary.csv" in capsys.readouterr().err


def test_a_colourfulness_ratio_is_judged_by_its_distance_from_the_truths(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """More colour than the photos have is no better than less: 1.25-1.30 is worse than 0.98-1.05, and
    0.90-0.92 better than 1.20-1.22, in the pooled table and in a grid's own verdicts."""
    defaults = "paper defaults"
    rows = [("ref", defaults, 10.0), ("ref", defaults, 10.0), ("vivid", "label_fuzz=0.1", 10.0),
            ("vivid", "label_fuzz=0.1", 10.0)]
    _write_summary(tmp_path / "grid", rows, ratios=[0.98, 1.05, 1.25, 1.30])
    assert experiments.main(["judge", str(tmp_path / "grid")]) == 0
    table = capsys.readouterr().out
    assert "| colourfulness / truth's, distance from 1 |" in table
    assert table.rstrip().endswith("| worse (+0.2400) |")  # mean distance 0.275 against 0.035

    def result(variant: str, changes: str, ratio: float) -> experiments.VariantResult:
        scores = {k: 0.5 for k in experiment_reports.SCORES} | {"colorfulness_ratio": ratio}
        return experiments.VariantResult(variant=variant, changes=changes, config=None, status="trained",
                                                model=scores, baseline=scores, baseline_kind="grey", seed=0,
                                                n_images=1)
    groups = {"ref": [result("ref", defaults, 1.20), result("ref", defaults, 1.22)],
              "muted": [result("muted", "lr_g=0.001", 0.90), result("muted", "lr_g=0.001", 0.92)]}
    [verdict] = experiment_reports.verdicts(groups)[2:]
    assert "colourfulness / truth's, distance from 1 better (-0.1200)" in verdict
