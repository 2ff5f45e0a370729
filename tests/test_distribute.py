"""Training on several devices and machines: mirrored replicas match one device, multi-worker processes train
and survive a killed worker, and checkpoints move between replica counts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf import runtime, schedule, training
from pix2pix_tf.checkpoints import RunCheckpoints
from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError
from pix2pix_tf.models import build_discriminator, build_generator
from pix2pix_tf.training import Trainer, epoch_batches

pytest_plugins = ("fake_training_data",)  # the photos and fake_data fixtures

# Two logical CPU devices for MirroredStrategy. This must happen before any TensorFlow op in this process; test
# modules only define things at import time, so collecting this module is early enough.
runtime.configure_devices(2)

SIZE = 64
REPO = Path(__file__).resolve().parents[1]
# Mirrored (2 replicas, sync BN, fp32, no dropout) against one device over 4 steps: the losses agree up to
# float32 summation order, which Adam's normalised updates can amplify; per-replica BN statistics instead change
# them by far more than this tolerance (the test prints both differences).
LOSS_RTOL = 1e-4
CLUSTER_TIMEOUT_S = 240  # per launch of the 2-process cluster, on 2 shared CPU cores


def tiny(**changes: object) -> Config:
    base = Config(image_size=SIZE, ngf=8, ndf=8, batch_size=4, g_dropout=0.0, precision="fp32", cpu_devices=2,
                  progress_samples=0, run_dir="unused")
    return base.replace(**changes)


def restored(config: Config) -> Trainer:
    """A Trainer with the run's latest checkpoint restored."""
    trainer = Trainer(config)
    RunCheckpoints(trainer.checkpointed(), trainer.step, config, trainer.strategy).restore()
    return trainer


def train_two_epochs(config: Config) -> tuple[list[dict[str, float]], list[np.ndarray]]:
    """The losses of every step, and the averaged generator's weights at the end."""
    keras.utils.set_random_seed(1)  # the same initial weights for every trainer
    trainer = Trainer(config)
    assert trainer.strategy.num_replicas_in_sync == (2 if config.strategy == "mirrored" else 1)
    losses = [{k: float(v) for k, v in trainer.train_step(batch).items()}
              for epoch in (0, 1) for batch in epoch_batches(config, trainer.strategy, epoch, skip=0)]
    return losses, [v.numpy() for v in trainer.averaged_generator.weights]


def checkpointed_values(trainer: Trainer) -> list[np.ndarray]:
    parts = (trainer.generator, trainer.discriminator, trainer.g_optimizer, trainer.d_optimizer)
    return [np.asarray(v.numpy()) for part in parts for v in part.variables] + [trainer.step.numpy()]


def max_relative_difference(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    return max(abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_sync_batchnorm_option_reaches_every_batch_norm_layer() -> None:
    for sync in (False, True):
        config = tiny(sync_batchnorm=sync)
        norms = [layer for model in (build_generator(config), build_discriminator(config))
                 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert len(norms) >= 8 and all(layer.synchronized == sync for layer in norms)


@pytest.mark.slow
def test_mirrored_on_two_devices_gives_the_losses_and_generator_average_of_one_device(fake_data) -> None:
    (one, one_average), (mirrored, mirrored_average) = (
        train_two_epochs(tiny(strategy=strategy, sync_batchnorm=True, g_ema=0.5)) for strategy in ("one", "mirrored"))
    per_replica_bn, _ = train_two_epochs(tiny(strategy="mirrored", sync_batchnorm=False, g_ema=0.5))
    synced, unsynced = max_relative_difference(one, mirrored), max_relative_difference(one, per_replica_bn)
    print(f"max relative loss difference over {len(one)} steps: sync BN {synced:.2e}, per-replica BN {unsynced:.2e}")
    assert len(one) == 4
    assert synced < LOSS_RTOL
    assert unsynced > LOSS_RTOL  # the comparison can tell: per-replica statistics do change the losses
    for a, b in zip(one_average, mirrored_average, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)


def test_one_replica_iterates_the_epoch_dataset_itself(fake_data) -> None:
    # The distributed wrapper runs tf.data's autotuning, whose thread stalled each new epoch
    # (data.without_autotuning); one replica has nothing to distribute, so it never goes through it.
    one = epoch_batches(tiny(strategy="one"), runtime.make_strategy(tiny(strategy="one")), 0, skip=1)
    two = epoch_batches(tiny(strategy="mirrored"), runtime.make_strategy(tiny(strategy="mirrored")), 0, skip=0)
    assert isinstance(one, tf.data.Iterator) and len(list(one)) == 1
    assert isinstance(two, tf.distribute.DistributedIterator) and len(list(two)) == 2


def test_global_batch_must_split_evenly_over_the_replicas() -> None:
    with pytest.raises(UserError, match="multiple of the 2 replicas"):
        Trainer(tiny(strategy="mirrored", batch_size=3))


@pytest.mark.slow
def test_checkpoints_move_between_two_replicas_and_one(fake_data, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    for strategy, steps, resumed_at in [("mirrored", 2, None), ("one", 4, 2), ("mirrored", 6, 4)]:
        lines: list[str] = []
        summary = training.train(tiny(strategy=strategy, steps=steps, run_dir=str(run_dir)), log=lines.append)
        assert summary.step == steps
        assert ("resuming at step" in lines[0]) == (resumed_at is not None)
        if resumed_at:
            assert f"resuming at step {resumed_at}" in lines[0]
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert checkpoint.endswith("ckpt-6")
    values = {}
    for strategy in ("one", "mirrored"):
        trainer = restored(tiny(strategy=strategy, run_dir=str(run_dir)))
        assert int(trainer.step.numpy()) == 6
        values[strategy] = checkpointed_values(trainer)
    for a, b in zip(values["one"], values["mirrored"], strict=True):
        np.testing.assert_array_equal(a, b)


def cluster_strategy(task_type: str | None, task_id: int = 0, *roles: str) -> SimpleNamespace:
    """Stands in for a MultiWorkerMirroredStrategy's view of its cluster."""
    spec = SimpleNamespace(as_dict=lambda: {role: ["host:1"] for role in roles})
    return SimpleNamespace(cluster_resolver=SimpleNamespace(task_type=task_type, task_id=task_id,
                                                            cluster_spec=lambda: spec))


def test_the_chief_writes_and_only_a_run_in_one_process_fits_its_schedule_to_its_clock() -> None:
    assert runtime.is_chief(tf.distribute.get_strategy())
    assert runtime.is_chief(cluster_strategy(None))
    assert runtime.is_chief(cluster_strategy("chief", 0, "chief", "worker"))
    assert not runtime.is_chief(cluster_strategy("worker", 0, "chief", "worker"))
    assert runtime.is_chief(cluster_strategy("worker", 0, "worker"))
    assert not runtime.is_chief(cluster_strategy("worker", 1, "worker"))
    budgeted = tiny(time_budget=10.0)
    assert schedule.fits_schedule(budgeted, tf.distribute.get_strategy())
    assert not schedule.fits_schedule(budgeted, cluster_strategy("worker", 0, "worker"))
    assert not schedule.fits_schedule(budgeted.replace(fit_schedule=False), tf.distribute.get_strategy())
    assert not schedule.fits_schedule(budgeted.replace(steps=10), tf.distribute.get_strategy())


# --- several processes ----------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Cluster:
    """Two `train.py --strategy multiworker` processes on 127.0.0.1, the same command for each."""

    def __init__(self, root: Path, steps: int, *flags: str) -> None:
        self.root = root
        self.workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
        self.args = [sys.executable, str(REPO / "train.py"), "--dataset", "sample", "--strategy", "multiworker",
                     "--image-size", str(SIZE), "--ngf", "8", "--ndf", "8", "--batch-size", "4", "--steps",
                     str(steps), "--checkpoint-every", "2", "--progress-samples", "2",
                     "--run-dir", str(root / "run"), "--export-dir", str(root / "export"), *flags]
        self.processes: list[subprocess.Popen] = []
        self.launches = 0

    def start(self, worker_env: dict[int, dict[str, str]] | None = None) -> None:
        """Launch both workers; `worker_env` adds environment variables to some of them."""
        self.launches += 1
        for index in range(2):
            scratch = self.scratch(index)
            scratch.mkdir()
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(scratch), TF_CONFIG=json.dumps(
                {"cluster": {"worker": self.workers}, "task": {"type": "worker", "index": index}}),
                       **(worker_env or {}).get(index, {}))
            with open(self.log_path(index), "w") as log:
                self.processes.append(subprocess.Popen(self.args, cwd=self.root, env=env, stdout=log,
                                                       stderr=subprocess.STDOUT))

    def scratch(self, index: int) -> Path:
        """The worker's TMPDIR in the latest launch (a killed launch leaves its temporary files behind)."""
        return self.root / f"tmp{index}.launch{self.launches}"

    def log_path(self, index: int) -> Path:
        return self.root / f"worker{index}.launch{self.launches}.log"

    def log(self, index: int) -> str:
        return self.log_path(index).read_text()

    def wait(self, deadline: float) -> list[int]:
        codes = [process.wait(timeout=max(deadline - time.monotonic(), 1)) for process in self.processes]
        self.processes = []
        return codes

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.processes = []


@pytest.fixture
def cluster(tmp_path: Path):
    clusters: list[Cluster] = []

    def make(steps: int, *flags: str) -> Cluster:
        clusters.append(Cluster(tmp_path, steps, *flags))
        return clusters[-1]

    yield make
    for c in clusters:
        c.kill()


def restore_on_one_device(run_dir: Path) -> Trainer:
    return restored(Config.load(run_dir / "config.json").replace(strategy="one", run_dir=str(run_dir)))


@pytest.mark.slow
def test_two_workers_train_survive_a_killed_worker_and_the_chief_checkpoint_restores_on_one_device(
        cluster, tmp_path) -> None:
    """SIGKILL worker 1 after the first checkpoint; the survivor cannot go on without it, so the whole cluster
    is restarted with the same command (as a cluster manager would) and finishes from the last checkpoint."""
    steps = 10
    workers = cluster(steps=steps)
    workers.start()
    run_dir = tmp_path / "run"
    directory = run_dir / "checkpoints"
    deadline = time.monotonic() + CLUSTER_TIMEOUT_S
    while tf.train.latest_checkpoint(str(directory)) is None:  # the first checkpoint, written and recorded
        assert time.monotonic() < deadline and all(p.poll() is None for p in workers.processes), workers.log(0)
        time.sleep(0.1)
    workers.processes[1].send_signal(signal.SIGKILL)
    workers.kill()  # the chief would hang in (or fail) its next collective without worker 1
    killed_at = int(re.findall(r"ckpt-(\d+)", tf.train.latest_checkpoint(str(directory)))[0])
    assert 2 <= killed_at < steps

    workers.start()
    codes = workers.wait(time.monotonic() + CLUSTER_TIMEOUT_S)
    assert codes == [0, 0], workers.log(0)[-3000:] + workers.log(1)[-3000:]
    for index in (0, 1):
        resumed = re.search(r"resuming at step (\d+)", workers.log(index))
        assert resumed and int(resumed.group(1)) >= killed_at, workers.log(index)[-3000:]
        assert "2 replica(s)" in workers.log(index) and f"done at step {steps}" in workers.log(index)
    assert tf.train.latest_checkpoint(str(directory)).endswith(f"ckpt-{steps}")
    assert (tmp_path / "export" / "saved_model.pb").exists() and (run_dir / "logs").is_dir()
    assert not list(workers.scratch(1).iterdir()), "the non-chief worker's checkpoints should be deleted"

    trainer = restore_on_one_device(run_dir)
    assert int(trainer.step.numpy()) == steps and trainer.strategy.num_replicas_in_sync == 1
    reader = tf.train.load_checkpoint(str(directory / f"ckpt-{steps}"))
    kernel = trainer.generator.get_layer("down2_conv").kernel.numpy()
    saved = [reader.get_tensor(key) for key, shape in reader.get_variable_to_shape_map().items()
             if shape == list(kernel.shape)]
    assert any(np.array_equal(kernel, value) for value in saved)


FAST_CLOCK = """import time
_monotonic = time.monotonic
time.monotonic = lambda: 4.0 * _monotonic()
"""


@pytest.mark.slow
def test_a_time_budget_stops_every_worker_at_the_same_step(cluster, tmp_path) -> None:
    """Each worker times the budget on its own clock. Worker 1's runs 4x fast here (a `sitecustomize` on its
    path), so its budget is spent first; the other must stop at the same step, or one of them would wait for the
    other in its next step forever."""
    shim = tmp_path / "fast_clock"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(FAST_CLOCK)
    workers = cluster(100_000, "--time-budget", "0.2", "--checkpoint-every", "1000")
    workers.start(worker_env={1: {"PYTHONPATH": str(shim)}})
    codes = workers.wait(time.monotonic() + CLUSTER_TIMEOUT_S)
    assert codes == [0, 0], workers.log(0)[-3000:] + workers.log(1)[-3000:]
    stops = [re.findall(r"done at step (\d+)", workers.log(index)) for index in (0, 1)]
    assert stops[0] == stops[1] and len(stops[0]) == 1, stops
    assert all("time budget of 0.2 min spent" in workers.log(index) for index in (0, 1))
    assert (tmp_path / "export" / "saved_model.pb").exists()
    assert int(restore_on_one_device(tmp_path / "run").step.numpy()) == int(stops[0][0])
