"""Devices, precision and distribution strategy: everything that must be settled before models are built."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

import keras
import tensorflow as tf

from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError


def configure_devices(cpu_devices: int) -> None:
    """Split the CPU into `cpu_devices` logical devices (for testing multi-device code without a GPU).

    Must run before TensorFlow initialises its devices; a second call with the same count is a no-op.
    """
    if cpu_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)]
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError as error:  # devices already initialised
        if len(tf.config.list_logical_devices("CPU")) != cpu_devices:
            raise UserError(f"--cpu-devices {cpu_devices}: TensorFlow devices were already initialised "
                            f"({error})") from error


# glibc mallopt parameters (malloc.h) and the values `keep_freed_memory` sets.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_SETTINGS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 1 << 30}


def keep_freed_memory(precision: str) -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel; True where applied.

    Applied only when `precision` (resolved) computes in 16 bits: with fp32 activations (CPUs without bfloat16)
    the kept memory raises the peak RSS above a plain Keras step's for a few per cent of speed (bench/README.md,
    "Memory reuse").

    Each training step allocates and frees weight-sized tensors (gradients, bfloat16 casts). With glibc's
    defaults the thread arenas give that memory back and fault it in again every step; larger mmap and trim
    thresholds and a 1 GiB top pad keep it (measured in bench/README.md, "Memory reuse"). Process-wide; a no-op
    off glibc Linux. TensorFlow lowers the mmap threshold whenever it builds a `from_generator` dataset (a
    workaround for Python 3.11 in tf.data), after which every larger allocation is mapped and faulted in afresh,
    so call this again once the input pipeline is built.
    """
    if precision == "fp32" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return all(mallopt(ctypes.c_int(key), ctypes.c_int(value)) == 1 for key, value in _MALLOC_SETTINGS.items())


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    return frozenset(flag for line in text.splitlines() if line.startswith("flags")
                     for flag in line.split(":", 1)[1].split())


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU does bfloat16 math natively (AVX512_BF16 or AMX-BF16 among its /proc/cpuinfo flags)."""
    return bool(BF16_CPU_FLAGS & cpu_flags(cpuinfo))


def cpu_has_avx512(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU has AVX-512 (avx512f), whose float32 oneDNN kernels rank the layer forms differently
    from the AVX2 ones (`layer_forms`)."""
    return "avx512f" in cpu_flags(cpuinfo)


def resolve_precision(precision: str) -> str:
    """`auto` picks mixed_float16 (with loss scaling) on a GPU, mixed_bfloat16 on a CPU with native bf16, else fp32.

    The speed and the loss curves of bf16 against fp32 are in bench/README.md. `--precision fp32` opts out.
    """
    if precision == "auto":
        if has_gpu():
            return "mixed_float16"
        return "mixed_bfloat16" if cpu_has_bf16() else "fp32"
    return precision


def keras_policy(precision: str) -> str:
    return "float32" if precision == "fp32" else precision


def apply_precision(config: Config) -> str:
    """Set the global Keras dtype policy for `config.precision`; returns the resolved precision."""
    precision = resolve_precision(config.precision)
    keras.mixed_precision.set_global_policy(keras_policy(precision))
    return precision


def resolve_jit_compile(config: Config) -> bool:
    """XLA only when asked for (`--jit-compile`): on the CPUs measured it made the step slower (bench/README.md)."""
    return bool(config.jit_compile) if config.jit_compile is not None else False


_STRATEGIES: dict[tuple[str, ...], tf.distribute.Strategy] = {}


def make_strategy(config: Config) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `config.strategy` (auto: mirrored over several GPUs, else one device).

    One strategy per kind and device set is made per process and shared by every Trainer: TensorFlow numbers
    collective ops per strategy object, so two MirroredStrategy objects over the same devices clash, and
    multiworker and tpu set up the runtime, which happens once. Those two are made before anything lists
    devices: they configure the TensorFlow runtime, which must not have started yet.
    """
    kind = config.strategy
    devices: list[str] = []
    if kind not in ("multiworker", "tpu"):
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        if kind == "auto":
            kind = "mirrored" if len(gpus) > 1 else "one"
        devices = (gpus or cpus)[:1] if kind == "one" else gpus or cpus
    key = (kind, *devices)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _new_strategy(kind, devices)
    return _STRATEGIES[key]


def _new_strategy(kind: str, devices: list[str]) -> tf.distribute.Strategy:
    if kind == "one":
        return tf.distribute.OneDeviceStrategy(devices[0])
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy multiworker reads the cluster from the TF_CONFIG environment variable, "
                            "which is not set (see README, 'Training on several devices and machines').")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"unknown strategy {kind!r}")


def in_one_process(strategy: tf.distribute.Strategy) -> bool:
    """Whether the strategy trains in this process alone: no cluster of workers, each with its own clock."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or not resolver.task_type


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: the one process, the cluster's chief, or else worker 0."""
    if in_one_process(strategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                              and "chief" not in resolver.cluster_spec().as_dict())


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """Whether `flag` holds on any worker of the cluster (one collective, so every worker must ask); in one
    process, `flag` itself."""
    if in_one_process(strategy):
        return flag
    flags = strategy.experimental_distribute_values_from_function(lambda context: tf.constant(1.0 if flag else 0.0))
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None)) > 0
