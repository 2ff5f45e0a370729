"""How long a run trains and at what learning rate: the paper's schedule, --time-budget, and the schedule
fitted to the budget (--fit-schedule)."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import tensorflow as tf

from pix2pix_tf import runtime
from pix2pix_tf.config import Config

FIT_MARGIN = 0.95  # share of the budget's remaining time that a fitted schedule plans to use
FIT_PACE_EPOCHS = 5  # the pace a fitted schedule plans with: that of the last epochs, at most this many
FIT_GROWTH = 0.02  # a fitted schedule grows back only by at least this share of its length


def learning_rate_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """Constant for `epochs`, then linear decay towards 0 over `epochs_decay` (the paper's schedule); 0 after
    that (a `--steps` past the schedule's end trains no further, it never climbs the loss)."""
    return max(0.0, 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1))


def total_steps(config: Config, steps_per_epoch: int) -> int:
    """--steps if given, else every epoch of the schedule."""
    return config.steps or config.total_epochs * steps_per_epoch


def fitted_schedule(config: Config, planned: Config, epochs_done: int, epochs_affordable: int) -> Config | None:
    """`config` with --epochs and --epochs-decay re-planned to end after `epochs_affordable` epochs (at least one
    more than `epochs_done`, at most `planned`'s schedule) in `planned`'s proportion; None if nothing changes.

    Epochs already trained keep the rate they had. While the rate is still constant the schedule may shrink or
    grow back (a slow spell has passed), but its constant phase never ends before `epochs_done`; once the rate
    decays, the schedule may only get shorter, so the rate never rises again.
    """
    if planned.total_epochs == 0:
        return None
    total = max(min(epochs_affordable, planned.total_epochs), epochs_done + 1)
    if epochs_done < config.epochs:
        epochs = max(epochs_done, round(total * planned.epochs / planned.total_epochs))
    else:
        total, epochs = min(total, config.total_epochs), config.epochs
    if (epochs, total - epochs) == (config.epochs, config.epochs_decay):
        return None
    return config.replace(epochs=epochs, epochs_decay=total - epochs)


def fits_schedule(config: Config, strategy: tf.distribute.Strategy) -> bool:
    """Whether this run fits its schedule to its budget. Several workers would each fit it to their own clock
    and disagree, so a cluster keeps the schedule asked for."""
    return (config.time_budget is not None and config.fit_schedule and not config.steps
            and runtime.in_one_process(strategy))


def resumed_schedule(config: Config, saved: Config) -> Config:
    """`config` with the schedule that `saved` (its latest checkpoint's Config) was fitted to, when that is
    shorter: a budgeted run resumed by its first command goes on with the rate it had, not the paper's."""
    if saved.time_budget is not None and saved.fit_schedule and saved.total_epochs < config.total_epochs:
        return config.replace(epochs=saved.epochs, epochs_decay=saved.epochs_decay)
    return config


class Budget:
    """--time-budget, timed on this process's `clock` from the budget's making and read once after each step.
    In a cluster any worker's spent budget stops them all: they must stop at the same step, or the others wait
    in their next step forever."""

    def __init__(self, minutes: float | None, strategy: tf.distribute.Strategy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.minutes, self.strategy, self.clock = minutes, strategy, clock
        self.started = self.now = clock()

    @property
    def reason(self) -> str:
        return f"time budget of {self.minutes:g} min spent"

    def remaining(self) -> float:
        """Seconds left at the last reading (negative once spent)."""
        return (self.minutes or 0.0) * 60 - (self.now - self.started)

    def spent(self) -> bool:
        """After a step: whether the budget is spent here or on any other worker (every worker must ask)."""
        if self.minutes is None:
            return False
        self.now = self.clock()
        return runtime.any_worker(self.strategy, self.remaining() < 0)


class ScheduleFitter:
    """--fit-schedule: after each epoch, the schedule that the rest of the budget holds at the pace of the last
    FIT_PACE_EPOCHS epochs, in the planned schedule's proportion (`fitted_schedule`)."""

    def __init__(self, planned: Config, steps_per_epoch: int, budget: Budget) -> None:
        self.planned, self.steps_per_epoch, self.budget = planned, steps_per_epoch, budget
        self.paces: collections.deque[tuple[float, int]] = collections.deque(maxlen=FIT_PACE_EPOCHS + 1)

    def after_step(self, step: int) -> None:
        """After the budget's reading: the pace is timed from the end of this process's first step, once the
        step is traced."""
        if not self.paces:
            self.paces.append((self.budget.now, step))

    def refit(self, config: Config, step: int) -> tuple[Config, float] | None:
        """After an epoch ending at `step`: the schedule to replace `config`'s and the pace (seconds per step) it
        was planned with; None to keep `config`'s."""
        if not self.paces or step <= self.paces[-1][1]:
            return None
        self.paces.append((self.budget.now, step))
        seconds_per_step = max(self.budget.now - self.paces[0][0], 1e-9) / (step - self.paces[0][1])
        affordable = int((step + FIT_MARGIN * self.budget.remaining() / seconds_per_step) // self.steps_per_epoch)
        fitted = fitted_schedule(config, self.planned, step // self.steps_per_epoch, affordable)
        if fitted is None:
            return None
        # It shrinks whenever it must; it grows back only by a real margin, or epochs with a checkpoint (a little
        # slower) would make its length flicker by an epoch.
        change = fitted.total_epochs - config.total_epochs
        if change < 0 or change >= FIT_GROWTH * config.total_epochs:
            return fitted, seconds_per_step
        return None
