"""The training step and loop: learning on real photos, and each of the study's knobs changing the step."""

from __future__ import annotations

import re
from collections.abc import Callable

import imageio.v2 as imageio
import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from pix2pix_tf import data, losses, training
from pix2pix_tf.color import AB_SCALE, make_pair
from pix2pix_tf.config import Config
from pix2pix_tf.models import CLASS_STRIDE, ab_bin_centres
from pix2pix_tf.training import Trainer, TrainingDiverged, fitted_schedule, learning_rate_factor

SIZE = 64


@pytest.fixture(scope="module")
def photos() -> tf.Tensor:
    """Four real photos bundled with scikit-image, as [4, 64, 64, 3] floats in [0, 1]."""
    images = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    return tf.stack([tf.image.resize(image / 255.0, (SIZE, SIZE)) for image in images])


def tiny(**changes) -> Config:
    base = Config(image_size=SIZE, ngf=8, ndf=8, batch_size=4, g_dropout=0.0, run_dir="unused")
    return base.replace(**changes)


def trainer_for(config: Config) -> Trainer:
    keras.utils.set_random_seed(1)  # identical initial weights for every trainer built here
    return Trainer(config)


def weights(model: keras.Model) -> list[np.ndarray]:
    return [w.numpy().copy() for w in model.trainable_weights]


def max_change(before: list[np.ndarray], model: keras.Model) -> float:
    return max(float(np.max(np.abs(b - w.numpy()))) for b, w in zip(before, model.trainable_weights, strict=True))


def update_size(before: list[np.ndarray], model: keras.Model) -> float:
    return float(np.sqrt(sum(np.sum((b - w.numpy()) ** 2) for b, w in zip(before, model.trainable_weights,
                                                                         strict=True))))


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_fifty_steps_on_real_photos_halve_the_l1_loss(photos: tf.Tensor, color_space: str) -> None:
    batch = make_pair(photos, color_space)
    trainer = trainer_for(tiny(ngf=16, ndf=16, g_dropout=0.5, color_space=color_space))
    l1 = [float(trainer.train_step(batch)["g_l1"]) for _ in range(50)]
    assert np.mean(l1[-5:]) < 0.65 * np.mean(l1[:3]), l1


def test_total_generator_loss_is_gan_plus_lambda_times_l1(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    for lambda_l1 in (20.0, 200.0):
        losses = trainer_for(tiny(lambda_l1=lambda_l1)).train_step(batch)
        expected = float(losses["g_gan"]) + lambda_l1 * float(losses["g_l1"])
        assert float(losses["g_total"]) == pytest.approx(expected, rel=1e-5)


def test_lambda_changes_the_generator_update(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    results = []
    for lambda_l1 in (0.0, 200.0):
        trainer = trainer_for(tiny(lambda_l1=lambda_l1))
        trainer.train_step(batch)
        results.append(weights(trainer.generator))
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(*results, strict=True)) > 1e-5


def test_fuzzy_labels_change_the_discriminator_loss_deterministically(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    sharp = float(trainer_for(tiny()).train_step(batch)["d_real"])
    fuzzy = [float(trainer_for(tiny(label_fuzz=0.3)).train_step(batch)["d_real"]) for _ in range(2)]
    assert fuzzy[0] == pytest.approx(fuzzy[1], rel=1e-6)  # same seed, same labels
    assert abs(fuzzy[0] - sharp) > 1e-3


def test_fuzzy_labels_stay_in_range_and_flips_swap_them() -> None:
    shape = tf.constant([64, 4, 4, 1])
    seed = tf.constant([0, 0], tf.int64)
    real, fake = losses.discriminator_labels(shape, fuzz=0.2, flip=0.0, seed=seed)
    assert 0.8 <= float(tf.reduce_min(real)) < float(tf.reduce_max(real)) <= 1.0
    assert 0.0 <= float(tf.reduce_min(fake)) < float(tf.reduce_max(fake)) <= 0.2
    real, fake = losses.discriminator_labels(shape, fuzz=0.0, flip=0.5, seed=seed)
    swapped = real[:, 0, 0, 0].numpy() == 0.0
    assert 10 < swapped.sum() < 54  # about half of 64 examples
    np.testing.assert_array_equal(fake[:, 0, 0, 0].numpy() == 1.0, swapped)


def test_extra_d_and_g_steps_run_extra_updates(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    for d_steps, g_steps in [(1, 1), (2, 1), (1, 2), (3, 2)]:
        trainer = trainer_for(tiny(d_steps=d_steps, g_steps=g_steps))
        trainer.train_step(batch)
        assert int(trainer.d_optimizer.iterations) == d_steps
        assert int(trainer.g_optimizer.iterations) == g_steps


def test_generator_learning_rate_scales_the_generator_update(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    sizes = {}
    for lr_g in (2e-4, 1e-3):
        trainer = trainer_for(tiny(lr_g=lr_g))
        before_g, before_d = weights(trainer.generator), weights(trainer.discriminator)
        trainer.train_step(batch)
        sizes[lr_g] = (update_size(before_g, trainer.generator), update_size(before_d, trainer.discriminator))
    assert sizes[1e-3][0] / sizes[2e-4][0] == pytest.approx(5.0, rel=0.05)  # Adam's first step ~ lr
    assert sizes[1e-3][1] == pytest.approx(sizes[2e-4][1], rel=1e-4)  # D's update does not depend on lr_g


def test_frozen_discriminator_step_leaves_d_untouched(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    trainer = trainer_for(tiny(d_steps=2))
    before_d, before_g = weights(trainer.discriminator), weights(trainer.generator)
    trainer.train_step(batch, train_d=False)
    assert max_change(before_d, trainer.discriminator) == 0.0
    assert int(trainer.d_optimizer.iterations) == 0
    assert max_change(before_g, trainer.generator) > 0.0


@pytest.fixture
def fake_data(monkeypatch, photos: tf.Tensor):
    """Stand in for the dataset: 8 crops of real photos, 2 batches of 4 per epoch; `poison` adds NaNs."""
    state = {"poison_from_step": None}

    def train_dataset(config: Config, epoch: int) -> tf.data.Dataset:
        x, y = make_pair(tf.concat([photos, tf.image.flip_left_right(photos)], axis=0), config.color_space)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.batch_size, drop_remainder=True)
        poison = state["poison_from_step"]
        if poison is not None:
            steps = data_steps(config)
            dataset = dataset.enumerate().map(
                lambda i, pair: (tf.where(i + epoch * steps >= poison, np.nan, pair[0]), pair[1]))
        return dataset

    def data_steps(config: Config) -> int:
        return 8 // config.batch_size

    def fixed_examples(config: Config, n: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = make_pair(photos[:n], config.color_space)
        return x.numpy(), y.numpy()

    monkeypatch.setattr(data, "train_dataset", train_dataset)
    monkeypatch.setattr(data, "steps_per_epoch", data_steps)
    monkeypatch.setattr(data, "fixed_examples", fixed_examples)
    monkeypatch.setattr("pix2pix_tf.export.export_generator",
                        lambda generator, config, export_dir, step: export_dir)
    return state


def test_generator_only_epochs_freeze_d_then_release_it(fake_data, monkeypatch, tmp_path) -> None:
    calls: list[bool] = []
    original = Trainer.train_step

    def recording_step(self, batch, train_d=True):
        calls.append(train_d)
        return original(self, batch, train_d=train_d)

    monkeypatch.setattr(Trainer, "train_step", recording_step)
    config = tiny(run_dir=str(tmp_path / "run"), epochs=3, epochs_decay=0, g_only_epochs=2, progress_samples=0)
    summary = training.train(config, log=lambda line: None)
    assert summary.step == 6
    assert calls == [False, False, False, False, True, True]


def test_each_epoch_keeps_freed_memory_again_after_building_its_pipeline(fake_data, monkeypatch, tmp_path) -> None:
    """Building an input pipeline can reset glibc's settings (tf.data's from_generator), so every epoch applies
    them again between building its batches and its first step."""
    from pix2pix_tf import runtime

    events: list[str] = []
    original_batches, original_step = Trainer.epoch_batches, Trainer.train_step
    monkeypatch.setattr(Trainer, "epoch_batches",
                        lambda self, epoch, skip: events.append("pipeline") or original_batches(self, epoch, skip))
    monkeypatch.setattr(Trainer, "train_step",
                        lambda self, batch, train_d=True: events.append("step") or original_step(self, batch, train_d))
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: events.append("keep") or True)
    config = tiny(run_dir=str(tmp_path / "run"), epochs=2, epochs_decay=0, progress_samples=0)
    training.train(config, log=lambda line: None)
    assert events == ["keep", *["pipeline", "keep", "step", "step"] * 2]  # the first "keep": Trainer()


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(fake_data, tmp_path) -> None:
    fake_data["poison_from_step"] = 3
    config = tiny(run_dir=str(tmp_path / "run"), epochs=3, epochs_decay=0, checkpoint_every=1, progress_samples=0)
    with pytest.raises(TrainingDiverged, match="NaN/inf at step 4"):
        training.train(config, log=lambda line: None)
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-3")


def test_run_writes_progress_frames_and_decays_the_learning_rate(fake_data, monkeypatch, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=2, progress_samples=2, image_every=1,
                  checkpoint_every=4)
    gifs: list[int] = []
    write_gif = training._write_gif
    monkeypatch.setattr(training, "_write_gif", lambda run_dir: gifs.append(1) or write_gif(run_dir))
    lines: list[str] = []
    summary = training.train(config, log=lines.append)
    assert summary.step == 6 and summary.stopped_early is None
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "progress").glob("*.png")) == [
        "epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    assert len(imageio.mimread(run / "progress.gif")) == 3
    assert len(gifs) == 1  # made once, at the end: rebuilding it from every frame costs more as the run grows
    # Checkpoints every --checkpoint-every steps and at the end, not at every (short) epoch's end.
    assert sorted(p.name for p in (run / "checkpoints").glob("*.index")) == ["ckpt-4.index", "ckpt-6.index"]
    assert any("lr x0.333" in line for line in lines)
    assert Config.load(run / "config.json") == config


def test_learning_rate_is_constant_then_decays_linearly_to_zero() -> None:
    factors = [learning_rate_factor(epoch, epochs=2, epochs_decay=3) for epoch in range(8)]
    assert factors == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0])  # never negative past the end


def test_steps_past_the_schedule_say_so_and_keep_the_learning_rate_at_zero(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=1, steps=8, progress_samples=0)
    lines: list[str] = []
    assert training.train(config, log=lines.append).step == 8
    assert any("runs past the learning-rate schedule's end at step 4" in line for line in lines)
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.rsplit("lr x", 1)[1] for line in epoch_lines] == ["1.000", "0.500", "0.000", "0.000"]


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_computes_in_half_and_keeps_losses_float32(photos: tf.Tensor, precision: str) -> None:
    batch = make_pair(photos, "rgb")
    try:
        trainer = trainer_for(tiny(precision=precision))
        losses = trainer.train_step(batch)
        assert trainer.generator.get_layer("down2_conv").compute_dtype == precision.removeprefix("mixed_")
        assert trainer.generator.output.dtype == "float32"
        assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in losses.values())
        loss_scaled = isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
        assert loss_scaled == (precision == "mixed_float16")
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_time_budget_stops_cleanly_with_a_checkpoint_and_an_export(fake_data, monkeypatch, tmp_path) -> None:
    exports: list[int] = []
    monkeypatch.setattr("pix2pix_tf.export.export_generator",
                        lambda generator, config, export_dir, step: exports.append(step) or export_dir)
    config = tiny(run_dir=str(tmp_path / "run"), epochs=50, epochs_decay=0, time_budget=1e-6,
                  progress_samples=0, export_dir=str(tmp_path / "model"))
    summary = training.train(config, log=lambda line: None)
    assert summary.stopped_early == "time budget of 1e-06 min spent"
    assert summary.step == 1 and exports == [1]
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-1")


def test_a_schedule_is_fitted_in_proportion_never_past_the_planned_one_and_never_raising_the_rate() -> None:
    paper = Config(epochs=100, epochs_decay=100)
    assert fitted_schedule(paper, paper, epochs_done=1, epochs_affordable=200) is None
    shrunk = fitted_schedule(paper, paper, epochs_done=1, epochs_affordable=41)
    assert (shrunk.epochs, shrunk.epochs_decay) == (20, 21)
    # While the rate is constant a schedule grows back when time frees up, never past the one asked for.
    regrown = fitted_schedule(shrunk, paper, epochs_done=5, epochs_affordable=81)
    assert (regrown.epochs, regrown.epochs_decay) == (40, 41)
    assert fitted_schedule(shrunk, paper, epochs_done=5, epochs_affordable=500) == paper
    # Epochs trained at the constant rate keep it; a decaying schedule only gets shorter, from where it began.
    late = fitted_schedule(paper, paper, epochs_done=30, epochs_affordable=40)
    assert (late.epochs, late.epochs_decay) == (30, 10)
    decaying = Config(epochs=10, epochs_decay=90)
    shorter = fitted_schedule(decaying, decaying, epochs_done=20, epochs_affordable=40)
    assert (shorter.epochs, shorter.epochs_decay) == (10, 30)
    assert fitted_schedule(shorter, decaying, epochs_done=20, epochs_affordable=80) is None
    # At least one more epoch; a schedule without decay stays without.
    spent = fitted_schedule(paper, paper, epochs_done=5, epochs_affordable=3)
    assert (spent.epochs, spent.epochs_decay) == (5, 1)
    constant = Config(epochs=50, epochs_decay=0)
    fitted_constant = fitted_schedule(constant, constant, epochs_done=1, epochs_affordable=10)
    assert (fitted_constant.epochs, fitted_constant.epochs_decay) == (10, 0)


class TickingClock:
    """Stands in for the training module's `time`: each reading is one second after the last, three seconds
    for the readings from `slow_from` up to `slow_until` (the machine got busy)."""

    def __init__(self, slow_from: int | None = None, slow_until: float = float("inf")) -> None:
        self.now, self.readings, self.slow_from, self.slow_until = 0.0, 0, slow_from, slow_until

    def monotonic(self) -> float:
        self.readings += 1
        slow = self.slow_from is not None and self.slow_from <= self.readings < self.slow_until
        self.now += 3.0 if slow else 1.0
        return self.now


def fitted_schedules(lines: list[str]) -> list[tuple[int, int]]:
    """(--epochs, --epochs-decay) of each of the run's "fitted to" log lines, in order."""
    return [(int(m[1]), int(m[2])) for line in lines if (m := re.search(r"--epochs (\d+) --epochs-decay (\d+)", line))]


def test_only_a_run_in_one_process_fits_its_schedule_to_its_clock() -> None:
    from types import SimpleNamespace

    assert training._in_one_process(tf.distribute.get_strategy())
    assert training._in_one_process(SimpleNamespace(cluster_resolver=SimpleNamespace(task_type=None)))
    assert not training._in_one_process(SimpleNamespace(cluster_resolver=SimpleNamespace(task_type="worker")))


def test_a_slow_spell_shrinks_the_fitted_schedule_and_its_end_lets_it_grow_back(
        fake_data, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("pix2pix_tf.export.export_generator",
                        lambda generator, config, export_dir, step: export_dir)
    monkeypatch.setattr(training, "time", TickingClock(slow_from=30, slow_until=90))
    config = tiny(run_dir=str(tmp_path / "run"), epochs=50, epochs_decay=50, time_budget=3.0,
                  progress_samples=0, checkpoint_every=1000, export_dir=str(tmp_path / "model"))
    lines: list[str] = []
    summary = training.train(config, log=lines.append)
    totals = [sum(schedule) for schedule in fitted_schedules(lines)]
    assert any(later > earlier for earlier, later in zip(totals, totals[1:], strict=False))
    assert all(later < earlier or later - earlier >= training.FIT_GROWTH * earlier  # no flicker by an epoch
               for earlier, later in zip(totals, totals[1:], strict=False))
    fitted = Config.load(tmp_path / "run" / "config.json")
    assert summary.stopped_early is None and summary.step == 2 * fitted.total_epochs == 2 * totals[-1]


def test_time_budget_fits_the_schedule_refits_it_finishes_its_decay_and_a_resume_keeps_it(
        fake_data, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("pix2pix_tf.export.export_generator",
                        lambda generator, config, export_dir, step: export_dir)
    monkeypatch.setattr(training, "time", TickingClock(slow_from=40))
    config = tiny(run_dir=str(tmp_path / "run"), epochs=50, epochs_decay=50, time_budget=2.0,
                  progress_samples=0, checkpoint_every=1000, export_dir=str(tmp_path / "model"))
    lines: list[str] = []
    summary = training.train(config, log=lines.append)
    fitted = Config.load(tmp_path / "run" / "config.json")
    assert 2 <= fitted.total_epochs < 100 and fitted.epochs_decay >= 1
    schedules = fitted_schedules(lines)
    assert len(schedules) >= 2 and schedules[-1] == (fitted.epochs, fitted.epochs_decay)
    assert abs(schedules[0][0] - schedules[0][1]) <= 1  # the paper's 50 + 50 in proportion
    assert sum(schedules[-1]) < sum(schedules[0])  # slower steps, a shorter schedule
    # Fitted again when the steps slowed down: the whole schedule ran, down to its last decayed epoch, before the
    # budget stopped anything.
    assert summary.stopped_early is None and summary.step == 2 * fitted.total_epochs
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == fitted.total_epochs
    assert epoch_lines[-1].endswith(f"lr x{1 / (fitted.epochs_decay + 1):.3f}")
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert training.saved_config(latest) == fitted
    # The same command again resumes the fitted schedule (already done), not the paper's 100 epochs.
    monkeypatch.setattr(training, "time", TickingClock())
    assert training.train(config, log=lambda line: None).step == summary.step


def test_the_classifying_head_learns_and_its_total_loss_is_gan_plus_lambda_class_times_cross_entropy(
        photos: tf.Tensor) -> None:
    batch = make_pair(photos, "lab")
    trainer = trainer_for(tiny(color_space="lab", chroma_head="classify", lambda_class=2.0, lr_g=1e-3))
    results = [{k: float(v) for k, v in trainer.train_step(batch).items()} for _ in range(40)]
    assert results[0]["g_total"] == pytest.approx(results[0]["g_gan"] + 2.0 * results[0]["g_class"], rel=1e-5)
    assert results[0]["g_class"] == pytest.approx(np.log(len(ab_bin_centres())), rel=0.05)  # about uniform at first
    cross_entropy = [r["g_class"] for r in results]
    assert np.mean(cross_entropy[-5:]) < 0.9 * np.mean(cross_entropy[:3]), cross_entropy


def test_rebalancing_weighs_colours_by_the_rarity_in_the_training_photos(fake_data, photos: tf.Tensor) -> None:
    config = tiny(color_space="lab", chroma_head="classify", class_rebalance=0.5)
    prior = training.colour_prior(config).numpy()
    assert prior.min() >= 0 and prior.sum() == pytest.approx(1.0, abs=1e-5)
    _, targets = make_pair(photos, "lab")
    coarse = losses.coarse_chroma(targets, CLASS_STRIDE).numpy().reshape(-1, 1, 2)
    distance = np.min(np.linalg.norm(coarse - ab_bin_centres()[None], axis=-1), axis=0) * AB_SCALE
    assert prior[distance <= 15.0].sum() > 0.95  # the photos' colours, smoothed by 5 a*b* units

    trainer = trainer_for(config)
    weights = trainer.bin_weights.numpy()
    assert np.sum(prior * weights) == pytest.approx(1.0, rel=1e-4)
    assert weights[np.argmax(prior)] == weights.min() and weights.max() > 10 * weights.min()
    unweighted = trainer_for(config.replace(class_rebalance=0.0))
    assert np.all(unweighted.bin_weights.numpy() == 1.0)
    batch = make_pair(photos, "lab")
    assert float(trainer.train_step(batch)["g_class"]) != pytest.approx(
        float(unweighted.train_step(batch)["g_class"]), rel=1e-3)


def test_checkpoints_carry_the_config_and_refuse_other_networks(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=0, progress_samples=0)
    training.train(config, log=lambda line: None)
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert training.saved_config(latest) == config
    with pytest.raises(training.UserError, match=r"ngf: 8 -> 16"):
        training.train(config.replace(ngf=16, epochs=2), log=lambda line: None)
    resumed = training.train(config.replace(epochs=2, lambda_l1=20.0), log=lambda line: None)  # loss knobs may change
    assert resumed.step == 4
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert training.saved_config(latest).lambda_l1 == 20.0


def test_fused_adam_matches_keras_adam() -> None:
    """Five updates of the fused kernel land where Keras's own Adam does, moments included."""
    start = [np.random.default_rng(0).normal(size=(16, 8)), np.random.default_rng(1).normal(size=(5,))]
    optimizers = {"keras": keras.optimizers.Adam(2e-4, beta_1=0.5), "fused": training.FusedAdam(2e-4, beta_1=0.5)}
    variables = {name: [keras.Variable(value, dtype="float32") for value in start] for name in optimizers}
    def compiled_update(optimizer: keras.optimizers.Optimizer, targets: list) -> Callable:
        optimizer.build(targets)
        return tf.function(lambda grads: optimizer.apply(grads, targets))

    steps = {name: compiled_update(optimizer, variables[name]) for name, optimizer in optimizers.items()}
    for seed in range(5):
        grads = [tf.random.normal(value.shape, seed=seed) for value in start]
        for name in optimizers:
            steps[name](grads)
    for expected, got in zip(variables["keras"], variables["fused"], strict=True):
        assert np.abs(expected.numpy() - got.numpy()).max() < 1e-6
        assert np.abs(expected.numpy() - start[0 if expected.shape == (16, 8) else 1]).max() > 5e-4  # it moved
    for kind in ("_momentums", "_velocities"):
        for expected, got in zip(getattr(optimizers["keras"], kind), getattr(optimizers["fused"], kind), strict=True):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4)  # 1 - beta_2 rounds differently


def test_averaged_generator_is_the_warmed_up_moving_average_of_the_live_one(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "lab")
    trainer = trainer_for(tiny(color_space="lab", g_ema=0.9))
    expected = weights(trainer.generator)
    assert all(np.array_equal(a, b) for a, b in zip(expected, weights(trainer.averaged_generator), strict=True))
    for step in range(2 * training.AVERAGE_EVERY + 1):
        trainer.train_step(batch)
        trainer.step.assign(step + 1)
        if step % training.AVERAGE_EVERY == 0:
            decay = min(0.9, (1 + step) / (10 + step)) ** training.AVERAGE_EVERY
            expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights(trainer.generator),
                                                                    strict=True)]
    for mine, want in zip(weights(trainer.averaged_generator), expected, strict=True):
        np.testing.assert_allclose(mine, want, rtol=1e-5, atol=1e-6)
    assert max_change(expected, trainer.generator) > 1e-5  # the average lags the live weights
    for mine, live in zip(trainer.averaged_generator.non_trainable_weights, trainer.generator.non_trainable_weights,
                          strict=True):
        np.testing.assert_array_equal(mine.numpy(), live.numpy())  # normalisation statistics copied as they are
    assert trainer.output_generator is trainer.averaged_generator


def test_the_averaged_generator_is_exported_checkpointed_and_kept_on_resume(fake_data, monkeypatch,
                                                                            tmp_path) -> None:
    exported: list[list[np.ndarray]] = []
    monkeypatch.setattr("pix2pix_tf.export.export_generator",
                        lambda generator, config, export_dir, step: exported.append(weights(generator)) or export_dir)
    config = tiny(run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=0, progress_samples=0, g_ema=0.99,
                  chroma_scale=1.0)
    training.train(config, log=lambda line: None)
    restored = trainer_for(config)
    assert restored.restore(fresh=False) == 2
    for sent, averaged in zip(exported[0], weights(restored.averaged_generator), strict=True):
        np.testing.assert_array_equal(sent, averaged)
    assert max_change(exported[0], restored.generator) > 0.0
    with pytest.raises(training.UserError, match=r"g_ema: 0.99 -> 0.0, .*--g-ema 0.99 resumes it"):
        training.train(config.replace(g_ema=0.0, epochs=2), log=lambda line: None)
    assert training.train(config.replace(g_ema=0.999, epochs=2), log=lambda line: None).step == 4


def test_a_grey_calibration_says_how_to_export_the_colours_and_that_command_does(fake_data, monkeypatch,
                                                                                tmp_path) -> None:
    from pix2pix_tf.calibration import Calibration
    from pix2pix_tf.train import main

    exported: list[tuple[float | None, int]] = []
    monkeypatch.setattr("pix2pix_tf.export.export_generator",
                        lambda generator, config, export_dir, step: exported.append((config.chroma_scale, step))
                        or export_dir)
    monkeypatch.setattr("pix2pix_tf.calibration.calibrate", lambda generator, config: Calibration(
        scale=0.0, ciede2000={"0.0": 10.0, "1.0": 12.0}, split="val", n_photos=1))
    config = tiny(color_space="lab", run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=1, steps=2,
                  progress_samples=0)
    lines: list[str] = []
    training.train(config, log=lines.append)
    advice = next(line for line in lines if line.startswith("the export returns photos grey"))
    command = advice.split("anyway: python train.py ")[1].split()
    assert command == ["--config", str(tmp_path / "run" / "config.json"), "--steps", "2", "--chroma-scale", "1"]
    assert main(command) == 0
    assert exported == [(0.0, 2), (1.0, 2)]  # the same weights, exported again with the network's colours
