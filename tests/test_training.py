"""Training: the step learns on real photos and each of the study's knobs changes it; the loop trains the planned
steps, resumes, checkpoints, stops on a NaN or a spent budget, fits its schedule, and writes what it shows."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import imageio.v2 as imageio
import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf import losses, schedule, train_step
from pix2pix_tf.checkpoints import RunCheckpoints, check_saved_config, saved_config
from pix2pix_tf.color import make_pair
from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError
from pix2pix_tf.optimizers import FusedAdam
from pix2pix_tf.schedule import fitted_schedule, learning_rate_factor
from pix2pix_tf.training import Trainer, TrainingDiverged, train

pytest_plugins = ("fake_training_data",)  # the photos and fake_data fixtures


def tiny(**changes: object) -> Config:
    base = Config(image_size=64, ngf=8, ndf=8, batch_size=4, g_dropout=0.0, run_dir="unused")
    return base.replace(**changes)


def trainer_for(config: Config) -> Trainer:
    keras.utils.set_random_seed(1)  # identical initial weights for every trainer built here
    return Trainer(config)


def restored(config: Config) -> Trainer:
    """A Trainer with the run's latest checkpoint restored."""
    trainer = trainer_for(config)
    RunCheckpoints(trainer.checkpointed(), trainer.step, config, trainer.strategy).restore()
    return trainer


def weights(model: keras.Model) -> list[np.ndarray]:
    return [w.numpy().copy() for w in model.trainable_weights]


def max_change(before: list[np.ndarray], model: keras.Model) -> float:
    return max(float(np.max(np.abs(b - w.numpy()))) for b, w in zip(before, model.trainable_weights, strict=True))


def update_size(before: list[np.ndarray], model: keras.Model) -> float:
    return float(np.sqrt(sum(np.sum((b - w.numpy()) ** 2) for b, w in zip(before, model.trainable_weights,
                                                                         strict=True))))


def quiet(line: str) -> None:
    pass


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name[5:-6]) for p in (run_dir / "checkpoints").glob("ckpt-*.index"))


# --- the step -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
@pytest.mark.slow
def test_fifty_steps_on_real_photos_halve_the_l1_loss(photos: tf.Tensor, color_space: str) -> None:
    batch = make_pair(photos, color_space)
    trainer = trainer_for(tiny(ngf=16, ndf=16, g_dropout=0.5, color_space=color_space))
    l1 = [float(trainer.train_step(batch)["g_l1"]) for _ in range(50)]
    assert np.mean(l1[-5:]) < 0.65 * np.mean(l1[:3]), l1


@pytest.mark.slow
def test_total_generator_loss_is_gan_plus_lambda_times_l1(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    for lambda_l1 in (20.0, 200.0):
        result = trainer_for(tiny(lambda_l1=lambda_l1)).train_step(batch)
        expected = float(result["g_gan"]) + lambda_l1 * float(result["g_l1"])
        assert float(result["g_total"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_lambda_changes_the_generator_update(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    results = []
    for lambda_l1 in (0.0, 200.0):
        trainer = trainer_for(tiny(lambda_l1=lambda_l1))
        trainer.train_step(batch)
        results.append(weights(trainer.generator))
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(*results, strict=True)) > 1e-5


@pytest.mark.slow
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


@pytest.mark.slow
def test_extra_d_and_g_steps_run_extra_updates(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    for d_steps, g_steps in [(1, 1), (3, 2)]:
        trainer = trainer_for(tiny(d_steps=d_steps, g_steps=g_steps))
        trainer.train_step(batch)
        assert int(trainer.d_optimizer.iterations) == d_steps
        assert int(trainer.g_optimizer.iterations) == g_steps


@pytest.mark.slow
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


@pytest.mark.slow
def test_frozen_discriminator_step_leaves_d_untouched(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "rgb")
    trainer = trainer_for(tiny(d_steps=2))
    before_d, before_g = weights(trainer.discriminator), weights(trainer.generator)
    trainer.train_step(batch, train_d=False)
    assert max_change(before_d, trainer.discriminator) == 0.0
    assert int(trainer.d_optimizer.iterations) == 0
    assert max_change(before_g, trainer.generator) > 0.0


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.slow
def test_mixed_precision_computes_in_half_and_keeps_losses_float32(photos: tf.Tensor, precision: str) -> None:
    batch = make_pair(photos, "rgb")
    trainer = trainer_for(tiny(precision=precision))
    result = trainer.train_step(batch)
    assert trainer.generator.get_layer("down2_conv").compute_dtype == precision.removeprefix("mixed_")
    assert trainer.generator.output.dtype == "float32"
    assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in result.values())
    loss_scaled = isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert loss_scaled == (precision == "mixed_float16")


def test_fused_adam_matches_keras_adam() -> None:
    """Five updates of the fused kernel land where Keras's own Adam does, moments included."""
    start = [np.random.default_rng(0).normal(size=(16, 8)), np.random.default_rng(1).normal(size=(5,))]
    optimizers = {"keras": keras.optimizers.Adam(2e-4, beta_1=0.5), "fused": FusedAdam(2e-4, beta_1=0.5)}
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


@pytest.mark.slow
def test_averaged_generator_is_the_warmed_up_moving_average_of_the_live_one(photos: tf.Tensor) -> None:
    batch = make_pair(photos, "lab")
    trainer = trainer_for(tiny(color_space="lab", g_ema=0.9))
    expected = weights(trainer.generator)
    assert all(np.array_equal(a, b) for a, b in zip(expected, weights(trainer.averaged_generator), strict=True))
    every = train_step.AVERAGE_EVERY
    for step in range(2 * every + 1):
        trainer.train_step(batch)
        trainer.step.assign(step + 1)
        if step % every == 0:
            decay = min(0.9, (1 + step) / (10 + step)) ** every
            expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights(trainer.generator),
                                                                    strict=True)]
    for mine, want in zip(weights(trainer.averaged_generator), expected, strict=True):
        np.testing.assert_allclose(mine, want, rtol=1e-5, atol=1e-6)
    assert max_change(expected, trainer.generator) > 1e-5  # the average lags the live weights
    for mine, live in zip(trainer.averaged_generator.non_trainable_weights, trainer.generator.non_trainable_weights,
                          strict=True):
        np.testing.assert_array_equal(mine.numpy(), live.numpy())  # normalisation statistics copied as they are
    assert trainer.output_generator is trainer.averaged_generator


# --- the loop -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_generator_only_epochs_freeze_d_then_release_it(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=3, epochs_decay=0, g_only_epochs=2, progress_samples=0)
    assert train(config, log=quiet).step == 6
    trainer = restored(config)
    assert int(trainer.step.numpy()) == 6
    assert int(trainer.g_optimizer.iterations) == 6
    assert int(trainer.d_optimizer.iterations) == 2  # the third epoch's two steps only


@pytest.mark.slow
def test_generator_only_epochs_that_cover_the_whole_run_say_so(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=3, epochs_decay=0, g_only_epochs=2, steps=4,
                  progress_samples=0)
    lines: list[str] = []
    assert train(config, log=lines.append).step == 4
    assert any("--g-only-epochs 2 covers all 4 steps: the discriminator is never trained" in line for line in lines)
    assert int(restored(config).d_optimizer.iterations) == 0


@pytest.mark.slow
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(fake_data, tmp_path) -> None:
    fake_data["poison_from_step"] = 3
    config = tiny(run_dir=str(tmp_path / "run"), epochs=3, epochs_decay=0, checkpoint_every=1, progress_samples=0)
    with pytest.raises(TrainingDiverged, match=r"loss became NaN/inf at step 4 \(g_gan nan.*\); the last good "
                                               r"checkpoint in .*checkpoints is kept\. Try a lower learning rate"):
        train(config, log=quiet)
    assert checkpoint_steps(tmp_path / "run") == [1, 2, 3]


def event_tags(run_dir: Path) -> set[str]:
    return {value.tag for events in (run_dir / "logs").glob("events.out.tfevents.*")
            for event in tf.compat.v1.train.summary_iterator(str(events)) for value in event.summary.value}


@pytest.mark.slow
def test_a_run_shows_its_progress_and_decays_the_learning_rate(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=2, progress_samples=2, image_every=1,
                  checkpoint_every=4)
    run = tmp_path / "run"
    gif_at_epoch_end: list[bool] = []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("epoch "):
            gif_at_epoch_end.append((run / "progress.gif").exists())

    lines: list[str] = []
    summary = train(config, log=log)
    assert summary.step == 6 and summary.stopped_early is None and summary.epochs_done == 3
    assert sorted(p.name for p in (run / "progress").glob("*.png")) == [
        "epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    assert len(imageio.mimread(run / "progress.gif")) == 3
    assert gif_at_epoch_end == [False, False, True]  # made once, at the end, from every frame
    # Checkpoints every --checkpoint-every steps and at the end, not at every (short) epoch's end.
    assert checkpoint_steps(run) == [4, 6]
    assert [line.rsplit("lr x", 1)[1] for line in lines if line.startswith("epoch ")] == ["1.000", "0.667", "0.333"]
    assert re.fullmatch(r"epoch 3/3 step 6: g_gan [\d.]+, g_l1 [\d.]+, g_total [\d.]+, d_real [\d.]+, d_fake [\d.]+, "
                        r"[\d.]+ img/s, lr x0\.333", lines[-1])
    assert Config.load(run / "config.json") == config
    assert {"generator/g_gan", "generator/g_l1", "generator/g_total", "discriminator/d_real",
            "discriminator/d_fake", "learning_rate/g", "learning_rate/d", "speed/images_per_second",
            "input_output_target", "config"} <= event_tags(run)


def test_learning_rate_is_constant_then_decays_linearly_to_zero() -> None:
    factors = [learning_rate_factor(epoch, epochs=2, epochs_decay=3) for epoch in range(8)]
    assert factors == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0])  # never negative past the end


@pytest.mark.slow
def test_steps_past_the_schedule_say_so_and_keep_the_learning_rate_at_zero(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=1, steps=8, progress_samples=0)
    lines: list[str] = []
    assert train(config, log=lines.append).step == 8
    assert any("runs past the learning-rate schedule's end at step 4" in line for line in lines)
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.rsplit("lr x", 1)[1] for line in epoch_lines] == ["1.000", "0.500", "0.000", "0.000"]


@pytest.mark.slow
def test_a_resumed_run_goes_on_from_its_checkpoint_to_the_planned_step(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=2, epochs_decay=0, steps=3, checkpoint_every=1,
                  progress_samples=0)
    assert train(config, log=quiet).step == 3
    lines: list[str] = []
    assert train(config.replace(steps=None), log=lines.append).step == 4  # mid-epoch: from batch 2 of epoch 2
    assert "resuming at step 3" in lines[0]
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 2/2 step 4"]
    assert train(config.replace(steps=None), log=quiet).step == 4  # nothing left to train
    assert train(config.replace(steps=None), fresh=True, log=quiet).step == 4
    assert checkpoint_steps(tmp_path / "run") == [2, 3, 4]  # --fresh started over: a new ckpt-1 was rotated out


@pytest.mark.slow
def test_time_budget_stops_cleanly_with_a_checkpoint(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=50, epochs_decay=0, time_budget=1e-6,
                  progress_samples=0)
    lines: list[str] = []
    summary = train(config, log=lines.append)
    assert summary.stopped_early == "time budget of 1e-06 min spent"
    assert summary.step == 1 and lines[-1].endswith("(time budget of 1e-06 min spent)")
    assert checkpoint_steps(tmp_path / "run") == [1]


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
    """A stand-in for the budget's clock, which it reads at its start and after each step: each step takes one
    second, three for the readings from `slow_from` up to `slow_until` (the machine got busy)."""

    def __init__(self, slow_from: int | None = None, slow_until: float = float("inf")) -> None:
        self.now, self.readings, self.slow_from, self.slow_until = 0.0, 0, slow_from, slow_until

    def __call__(self) -> float:
        self.readings += 1
        slow = self.slow_from is not None and self.slow_from <= self.readings < self.slow_until
        self.now += 3.0 if slow else 1.0
        return self.now


def fitted_schedules(lines: list[str]) -> list[tuple[int, int]]:
    """(--epochs, --epochs-decay) of each of the run's "fitted to" log lines, in order."""
    return [(int(m[1]), int(m[2])) for line in lines if (m := re.search(r"--epochs (\d+) --epochs-decay (\d+)", line))]


@pytest.mark.slow
def test_a_slow_spell_shrinks_the_fitted_schedule_and_its_end_lets_it_grow_back(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=50, epochs_decay=50, time_budget=3.0,
                  progress_samples=0, checkpoint_every=1000)
    lines: list[str] = []
    summary = train(config, log=lines.append, clock=TickingClock(slow_from=20, slow_until=30))
    totals = [sum(fitted) for fitted in fitted_schedules(lines)]
    assert any(later > earlier for earlier, later in zip(totals, totals[1:], strict=False))
    assert all(later < earlier or later - earlier >= schedule.FIT_GROWTH * earlier  # no flicker by an epoch
               for earlier, later in zip(totals, totals[1:], strict=False))
    fitted = Config.load(tmp_path / "run" / "config.json")
    assert summary.stopped_early is None and summary.step == 2 * fitted.total_epochs == 2 * totals[-1]
    assert summary.config == fitted


@pytest.mark.slow
def test_time_budget_fits_the_schedule_refits_it_finishes_its_decay_and_a_resume_keeps_it(
        fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=50, epochs_decay=50, time_budget=2.0,
                  progress_samples=0, checkpoint_every=1000)
    lines: list[str] = []
    summary = train(config, log=lines.append, clock=TickingClock(slow_from=40))
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
    assert saved_config(latest) == fitted
    # The same command again resumes the fitted schedule (already done), not the paper's 100 epochs.
    assert train(config, log=quiet, clock=TickingClock()).step == summary.step


@pytest.mark.slow
def test_checkpoints_carry_the_config_and_refuse_other_networks(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=0, progress_samples=0)
    train(config, log=quiet)
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert saved_config(latest) == config
    with pytest.raises(UserError, match=r"ngf: 8 -> 16"):
        train(config.replace(ngf=16, epochs=2), log=quiet)
    assert Config.load(tmp_path / "run" / "config.json") == config  # the refused run changed nothing
    resumed = train(config.replace(epochs=2, lambda_l1=20.0), log=quiet)  # loss knobs may change
    assert resumed.step == 4
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert saved_config(latest).lambda_l1 == 20.0


def test_a_checkpoint_of_a_removed_option_is_refused_by_name_and_one_with_its_old_default_is_not(tmp_path) -> None:
    config = tiny()

    def older_checkpoint(name: str, **removed: object) -> str:
        saved = tf.Variable(json.dumps({**config.to_dict(), **removed}), trainable=False)
        return tf.train.Checkpoint(config=saved).write(str(tmp_path / name))

    with pytest.raises(UserError, match=r"chroma_head='classify'.*no longer has"):
        check_saved_config(config, older_checkpoint("classify", chroma_head="classify", lambda_class=100.0))
    with pytest.raises(UserError, match=r"gan_loss='lsgan'"):
        check_saved_config(config, older_checkpoint("lsgan", gan_loss="lsgan"))
    check_saved_config(config, older_checkpoint("defaults", chroma_head="regress", gan_loss="vanilla",
                                                lambda_class=1.0))


@pytest.mark.slow
def test_the_averaged_generator_is_the_runs_output_checkpointed_and_kept_on_resume(fake_data, tmp_path) -> None:
    config = tiny(run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=0, progress_samples=0, g_ema=0.99)
    summary = train(config, log=quiet)
    output = weights(summary.generator)
    trainer = restored(config)
    assert int(trainer.step.numpy()) == 2
    for sent, averaged in zip(output, weights(trainer.averaged_generator), strict=True):
        np.testing.assert_array_equal(sent, averaged)
    assert max_change(output, trainer.generator) > 0.0
    with pytest.raises(UserError, match=r"g_ema: 0.99 -> 0.0, .*--g-ema 0.99 resumes it"):
        train(config.replace(g_ema=0.0, epochs=2), log=quiet)
    assert train(config.replace(g_ema=0.999, epochs=2), log=quiet).step == 4
