"""Training and inference speed of pix2pix-tf against a plain reference step, in one run.

    python bench/speed.py [--size 256] [--rounds 2] [--repeats 3] [--steps 5] [--out bench/speed.json] [--quick]

Every measured configuration runs in its own subprocess (``--_one SPEC``), so peak RSS, oneDNN state and thread
pools never leak from one row into the next. The rows are measured in `--rounds` passes (a fresh process per
row per pass, timings pooled), so load from other programs that drifts over minutes falls on every row. Rows:

* ``ceiling``: a large square matmul in fp32 and bfloat16 (the machine's dense-math ceiling);
* ``floors``: the memory bandwidth (adding two large fp32 vectors), and the default Trainer's fused Adam update
  of every generator and discriminator weight, which costs the same at any batch size. With the FLOPs at the
  bf16 ceiling they bound the training step from below: the "training bound" table;
* ``reference``: the paper's U-Net + PatchGAN written plainly here (Keras functional API, fp32, one
  `tf.function` with two GradientTapes, untuned); training at batch 1 and 4, generator inference at 1 and 8;
  rows are timed on uniform random tensors, and the ``photos`` rows (reference and project default, training)
  on a batch of scikit-image's real photos, compared with each other;
* ``project``: `Trainer.train_step` with the default Config (precision auto), with each precision and with XLA
  (``jit_compile``), and the exported SavedModel's ``serving_default`` signature (uint8 in, uint8 out) at
  batch 1 and 8, loaded with `tf.saved_model.load` in a process that did not write it (``--_export`` does, in
  a process of its own), as another TensorFlow program would; and that export for a Lab model on one
  2048 x 1536 photo (the generator at the working size, the colour conversions at full resolution), which
  has no reference row.
* ``frozen weights``: the reference generator and the export again, in processes run with
  ``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1`` (oneDNN converts each convolution's weights to its layout once, not on
  every call), as the project's inference-only tools (evaluate, colorize) run; each compared with the other.

FLOPs are analytic, from the layer shapes: a convolution costs 2 * H_out * W_out * C_in * C_out * k * k, a
stride-2 transposed convolution 2 * H_in * W_in * C_in * C_out * k * k (norms, activations and the optimiser
are left out). A training step is counted as 3 x forward (backward ~ 2 x forward) of one generator pass and
two discriminator passes: 3 * (G + 2 * D) per image. Inference is G per image (the export's resizing and
colour conversion are left out). ``--quick`` is a smoke test (64 px, ngf = ndf = 8, one call per repeat, one row
per kind and weight setting at batch 1 and the default precision, three shared subprocesses); its numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pix2pix_tf.cli import FROZEN_WEIGHTS_VARIABLE  # no TensorFlow import: the parent stays light

KERNEL = 4
TRAIN_ROWS: list[dict[str, Any]] = [
    {"name": "reference fp32", "kind": "ref_train", "batch": 1},
    {"name": "reference fp32", "kind": "ref_train", "batch": 4},
    {"name": "project default (auto)", "kind": "train", "precision": "auto", "batch": 1},
    {"name": "project default (auto)", "kind": "train", "precision": "auto", "batch": 4},
    {"name": "project fp32", "kind": "train", "precision": "fp32", "batch": 1},
    {"name": "project fp32", "kind": "train", "precision": "fp32", "batch": 4},
    {"name": "project mixed_bfloat16", "kind": "train", "precision": "mixed_bfloat16", "batch": 1},
    {"name": "project mixed_bfloat16", "kind": "train", "precision": "mixed_bfloat16", "batch": 4},
    {"name": "project mixed_float16", "kind": "train", "precision": "mixed_float16", "batch": 1},
    {"name": "project XLA (auto)", "kind": "train", "precision": "auto", "jit": True, "batch": 1},
    {"name": "project XLA (auto)", "kind": "train", "precision": "auto", "jit": True, "batch": 4},
    {"name": "reference fp32, photos", "kind": "ref_train", "batch": 1, "data": "photos"},
    {"name": "reference fp32, photos", "kind": "ref_train", "batch": 4, "data": "photos"},
    {"name": "project default (auto), photos", "kind": "train", "precision": "auto", "batch": 1, "data": "photos"},
    {"name": "project default (auto), photos", "kind": "train", "precision": "auto", "batch": 4, "data": "photos"},
]
INFER_ROWS: list[dict[str, Any]] = [
    {"name": "reference G fp32", "kind": "ref_infer", "batch": 1},
    {"name": "reference G fp32", "kind": "ref_infer", "batch": 8},
    {"name": "project export (auto)", "kind": "infer", "precision": "auto", "batch": 1},
    {"name": "project export (auto)", "kind": "infer", "precision": "auto", "batch": 8},
    {"name": "project export fp32", "kind": "infer", "precision": "fp32", "batch": 1},
    {"name": "project export fp32", "kind": "infer", "precision": "fp32", "batch": 8},
    {"name": "reference G fp32, frozen weights", "kind": "ref_infer", "batch": 1, "frozen": True},
    {"name": "reference G fp32, frozen weights", "kind": "ref_infer", "batch": 8, "frozen": True},
    {"name": "project export (auto), frozen weights", "kind": "infer", "precision": "auto", "batch": 1, "frozen": True},
    {"name": "project export (auto), frozen weights", "kind": "infer", "precision": "auto", "batch": 8, "frozen": True},
    # What a user colorizing a photo waits for: a Lab model (the `folder` preset's colour space) on a 3-megapixel
    # photo, the generator at the working size and the colour conversions at full resolution; no reference.
    {"name": "project export (auto), Lab model, 2048 x 1536 photo, frozen weights", "kind": "infer",
     "precision": "auto", "batch": 1, "frozen": True, "color_space": "lab", "photo": [1536, 2048]},
]
CEILING_ROWS: list[dict[str, Any]] = [
    {"name": "matmul fp32", "kind": "matmul", "dtype": "float32", "batch": 0},
    {"name": "matmul bf16", "kind": "matmul", "dtype": "bfloat16", "batch": 0},
    # The floors that no tuning of the layers removes: memory bandwidth, and the optimiser's update of every
    # weight, which touches each parameter's value, gradient and two moments once per step at any batch size.
    {"name": "memory a + b (fp32)", "kind": "memory", "batch": 0},
    {"name": "Adam update of G and D", "kind": "optimiser", "batch": 0},
]
ADAM_BYTES_PER_PARAMETER = 7 * 4  # ResourceApplyAdam reads value, m, v and gradient and writes value, m, v (fp32)
FLOOR_KINDS = ("memory", "optimiser")
ROWS = CEILING_ROWS + TRAIN_ROWS + INFER_ROWS


# --- analytic FLOPs ---------------------------------------------------------------------------------------------
def generator_flops(size: int, in_ch: int, out_ch: int, ngf: int) -> float:
    """Forward FLOPs of the paper's U-Net for one size x size image (depth log2(size), skips double C_in)."""
    depth = size.bit_length() - 1
    filters = [min(ngf * 2**i, ngf * 8) for i in range(depth)]
    flops, side, c_in = 0.0, size, in_ch
    for f in filters:  # encoder: stride-2 convolutions
        side //= 2
        flops += 2 * side * side * c_in * f * KERNEL**2
        c_in = f
    for i, f in enumerate(reversed(filters[:-1])):  # decoder: stride-2 transposed convolutions
        flops += 2 * side * side * (c_in if i == 0 else 2 * c_in) * f * KERNEL**2
        side *= 2
        c_in = f
    return flops + 2 * side * side * 2 * c_in * out_ch * KERNEL**2


def discriminator_flops(size: int, in_ch: int, ndf: int, layers: int = 3) -> float:
    """Forward FLOPs of the 70x70 PatchGAN ('same' padding, last two convolutions with stride 1)."""
    side = size // 2
    flops = 2 * side * side * in_ch * ndf * KERNEL**2
    c_in = ndf
    for i in range(1, layers + 1):
        f = ndf * min(2**i, 8)
        if i < layers:
            side //= 2
        flops += 2 * side * side * c_in * f * KERNEL**2
        c_in = f
    return flops + 2 * side * side * c_in * KERNEL**2


# --- the reference: plain pix2pix, written from the paper ------------------------------------------------------
def reference_models(size: int, ngf: int, ndf: int) -> tuple[Any, Any]:
    """U-Net generator and PatchGAN discriminator for 3-channel pairs, fp32, built in the functional API."""
    import keras
    from keras import layers

    def weights() -> keras.initializers.Initializer:
        return keras.initializers.RandomNormal(0.0, 0.02)

    def encode(x: Any, filters: int, norm: bool, stride: int = 2) -> Any:
        x = layers.Conv2D(filters, KERNEL, strides=stride, padding="same", kernel_initializer=weights(),
                          use_bias=not norm)(x)
        if norm:
            x = layers.BatchNormalization()(x)
        return layers.LeakyReLU(0.2)(x)

    def decode(x: Any, filters: int, dropout: bool) -> Any:
        x = layers.Conv2DTranspose(filters, KERNEL, strides=2, padding="same", kernel_initializer=weights(),
                                   use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        if dropout:
            x = layers.Dropout(0.5)(x)
        return layers.ReLU()(x)

    depth = size.bit_length() - 1
    filters = [min(ngf * 2**i, ngf * 8) for i in range(depth)]
    image = keras.Input((size, size, 3))
    x, skips = image, []
    for i, f in enumerate(filters):
        x = encode(x, f, norm=0 < i < depth - 1)
        skips.append(x)
    for i, f in enumerate(reversed(filters[:-1])):
        x = decode(x, f, dropout=i < 3)
        x = layers.Concatenate()([x, skips[depth - 2 - i]])
    out = layers.Conv2DTranspose(3, KERNEL, strides=2, padding="same", kernel_initializer=weights(),
                                 activation="tanh")(x)
    generator = keras.Model(image, out)

    source, target = keras.Input((size, size, 3)), keras.Input((size, size, 3))
    x = encode(layers.Concatenate()([source, target]), ndf, norm=False)
    x = encode(x, ndf * 2, norm=True)
    x = encode(x, ndf * 4, norm=True)
    x = encode(x, ndf * 8, norm=True, stride=1)
    logits = layers.Conv2D(1, KERNEL, padding="same", kernel_initializer=weights())(x)
    return generator, keras.Model([source, target], logits)


def reference_train_step(generator: Any, discriminator: Any) -> Any:
    """The textbook step: G forward, D on real and fake, two tapes, Adam(2e-4, 0.5) on each network."""
    import keras
    import tensorflow as tf

    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    g_opt, d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)

    @tf.function
    def step(source: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(source, training=True)
            real_logits = discriminator([source, target], training=True)
            fake_logits = discriminator([source, fake], training=True)
            g_loss = bce(tf.ones_like(fake_logits), fake_logits) + 100.0 * tf.reduce_mean(tf.abs(target - fake))
            d_loss = bce(tf.ones_like(real_logits), real_logits) + bce(tf.zeros_like(fake_logits), fake_logits)
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, generator.trainable_variables),
                                  generator.trainable_variables, strict=True))
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, discriminator.trainable_variables),
                                  discriminator.trainable_variables, strict=True))
        return g_loss

    return step


# --- one configuration, inside its child process ---------------------------------------------------------------
def timed(call: Any, warmup: int, repeats: int, steps: int) -> list[float]:
    """Seconds per call: `warmup` untimed calls, then `repeats` timings of `steps` calls each."""
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            call()
        seconds.append((time.perf_counter() - start) / steps)
    return seconds


def photo_pairs(size: int, batch: int) -> tuple[Any, Any]:
    """(grey input, colour target) in [-1, 1], 3 channels each, from scikit-image's bundled photos: a batch of
    real pictures instead of uniform noise, the same shapes the random rows train on."""
    import numpy as np
    import skimage.data
    import skimage.transform
    import tensorflow as tf

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    colour = np.stack([skimage.transform.resize(photo, (size, size), anti_aliasing=True)
                       for photo in (photos * batch)[:batch]]).astype(np.float32)
    grey = np.repeat(colour @ np.array([[0.299], [0.587], [0.114]], np.float32), 3, axis=-1)
    return tf.constant(grey * 2.0 - 1.0), tf.constant(colour * 2.0 - 1.0)


def measure(spec: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """Time one row; returns seconds per call and what the row computed (precision, FLOPs per call)."""
    import keras
    import numpy as np
    import tensorflow as tf

    size, batch, kind = opts["size"], spec["batch"], spec["kind"]
    ngf = ndf = opts["filters"]
    keras.utils.set_random_seed(0)
    runs = {"warmup": opts["warmup"], "repeats": opts["repeats"], "steps": opts["steps"]}
    info: dict[str, Any] = {"precision": spec.get("precision", "fp32"),
                            "frozen_weights": os.environ.get(FROZEN_WEIGHTS_VARIABLE) == "1"}
    g_flops = generator_flops(size, 1, 2, ngf) if spec.get("color_space") == "lab" else generator_flops(size, 3, 3, ngf)
    if spec.get("data") == "photos":
        source, target = photo_pairs(size, batch)
    else:
        source = tf.random.uniform([max(batch, 1), size, size, 3], -1.0, 1.0, seed=1)
        target = tf.random.uniform([max(batch, 1), size, size, 3], -1.0, 1.0, seed=2)

    if kind == "matmul":
        n = opts["matmul_n"]
        a = tf.random.uniform([n, n], dtype=tf.float32, seed=3)
        a = tf.cast(a, spec["dtype"])
        product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, a)[:1, :1], tf.float32)))
        seconds = timed(lambda: product().numpy(), **runs)
        info.update(precision=spec["dtype"], flops_per_call=2.0 * n**3)
    elif kind == "memory":
        n = opts["stream_n"]
        a, b = tf.random.uniform([n], seed=4), tf.random.uniform([n], seed=5)
        added = tf.function(lambda: (a + b)[-1:])
        seconds = timed(lambda: added().numpy(), **runs)
        info["bytes_per_call"] = 3.0 * 4 * n  # read a and b, write the sum
    elif kind == "optimiser":  # the default Trainer's own optimisers, one tf.function, as inside the train step
        from pix2pix_tf.config import Config
        from pix2pix_tf.training import Trainer

        trainer = Trainer(Config(image_size=size, ngf=ngf, ndf=ndf, run_dir=tempfile.mkdtemp()))
        parts = [(trainer.g_optimizer, trainer.generator.trainable_variables),
                 (trainer.d_optimizer, trainer.discriminator.trainable_variables)]
        gradients = [[tf.random.normal(v.shape, stddev=1e-3, seed=6) for v in variables] for _, variables in parts]

        @tf.function
        def update() -> tf.Tensor:
            for (optimizer, variables), grads in zip(parts, gradients, strict=True):
                optimizer.apply(grads, variables)
            return trainer.g_optimizer.iterations

        seconds = timed(lambda: update().numpy(), **runs)
        parameters = sum(int(np.prod(v.shape)) for _, variables in parts for v in variables)
        info.update(precision=trainer.precision, parameters=parameters,
                    bytes_per_call=float(ADAM_BYTES_PER_PARAMETER * parameters))
    elif kind == "ref_train":
        generator, discriminator = reference_models(size, ngf, ndf)
        step = reference_train_step(generator, discriminator)
        seconds = timed(lambda: step(source, target).numpy(), **runs)
    elif kind == "ref_infer":
        generator, _ = reference_models(size, ngf, ndf)
        infer = tf.function(lambda x: generator(x, training=False))
        seconds = timed(lambda: infer(source).numpy(), **runs)
    elif kind == "train":
        from pix2pix_tf.config import Config
        from pix2pix_tf.training import Trainer

        config = Config(image_size=size, batch_size=batch, ngf=ngf, ndf=ndf, precision=spec["precision"],
                        jit_compile=spec.get("jit"), run_dir=tempfile.mkdtemp())
        trainer = Trainer(config)
        seconds = timed(lambda: trainer.train_step((source, target))["g_total"].numpy(), **runs)
        info["precision"] = trainer.precision
    else:  # infer: the exported SavedModel, uint8 photos in and out, loaded as any TensorFlow program would
        path = Path(tempfile.mkdtemp()) / "model"
        exported = subprocess.run([sys.executable, __file__, "--_export", json.dumps(
            {"size": size, "ngf": ngf, "precision": spec["precision"], "path": str(path),
             "color_space": spec.get("color_space", "rgb")})],
            capture_output=True, text=True, check=True)
        info["precision"] = exported.stdout.split()[-1]
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        height, width = spec.get("photo", [size, size])
        photos = tf.constant(np.random.default_rng(0).integers(0, 256, [batch, height, width, 3], np.uint8))
        seconds = timed(lambda: signature(images=photos)["output_0"].numpy(), **runs)
    if kind in ("ref_train", "train"):
        info["flops_per_call"] = batch * 3 * (g_flops + 2 * discriminator_flops(size, 6, ndf))
    elif kind in ("ref_infer", "infer"):
        info["flops_per_call"] = batch * g_flops
    return {**spec, **info, "seconds": seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def export_child(options: dict[str, Any]) -> None:
    """Entry point of the process that writes the SavedModel an inference row loads; prints its precision."""
    from pix2pix_tf import export, runtime
    from pix2pix_tf.config import Config
    from pix2pix_tf.models import build_generator

    config = Config(image_size=options["size"], ngf=options["ngf"], precision=options["precision"],
                    color_space=options["color_space"])
    precision = runtime.apply_precision(config)
    export.export_generator(build_generator(config), config, options["path"], 0)
    print(precision)


def child(specs: list[dict[str, Any]], opts: dict[str, Any]) -> None:
    """Entry point of a child process: measure each spec, print one JSON line per row."""
    for spec in specs:
        print("ROW " + json.dumps(measure(spec, opts)), flush=True)


# --- the parent: spawn, collect, summarise ---------------------------------------------------------------------
def run_children(groups: list[list[dict[str, Any]]], opts: dict[str, Any], parallel: int) -> list[dict[str, Any]]:
    """Run each group of specs in a fresh Python process; returns the rows in ROWS order."""
    def run(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
        env = {key: value for key, value in os.environ.items() if key != FROZEN_WEIGHTS_VARIABLE}
        env.update({"TF_CPP_MIN_LOG_LEVEL": "3"}, **({FROZEN_WEIGHTS_VARIABLE: "1"} if group[0].get("frozen") else {}))
        names = ", ".join(f"{s['name']} b{s['batch']}" for s in group)
        print(f"  measuring {names} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, "--_one", json.dumps({"specs": group, "opts": opts})],
                              capture_output=True, text=True, env=env)
        if done.returncode:
            raise RuntimeError(f"child for {names} failed:\n{done.stderr[-4000:]}")
        return [json.loads(line[4:]) for line in done.stdout.splitlines() if line.startswith("ROW ")]

    with ThreadPoolExecutor(parallel) as pool:
        return [row for rows in pool.map(run, groups) for row in rows]


def merge(same: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """One row from its measurements in several rounds: all timings, the highest peak RSS."""
    return {**same[0], "seconds": [s for row in same for s in row["seconds"]],
            "peak_rss_mib": max(row["peak_rss_mib"] for row in same)}


def summarise(rows: list[dict[str, Any]]) -> None:
    """Add img/s (median, min, max), GFLOP/s, fraction of the ceiling and the project / reference ratio."""
    ceiling = {r["precision"]: r["flops_per_call"] / statistics.median(r["seconds"]) / 1e9
               for r in rows if r["kind"] == "matmul"}
    for r in rows:
        median = statistics.median(r["seconds"])
        if r["kind"] in FLOOR_KINDS:
            r["gb_per_s"] = r["bytes_per_call"] / median / 1e9
            continue
        r["gflops"] = r["flops_per_call"] / median / 1e9
        if r["kind"] == "matmul":
            continue
        rates = [r["batch"] / s for s in r["seconds"]]
        r["img_per_s"], r["img_per_s_min"], r["img_per_s_max"] = r["batch"] / median, min(rates), max(rates)
        r["of_fp32_ceiling"] = r["gflops"] / ceiling["float32"]
        r["of_bf16_ceiling"] = r["gflops"] / ceiling["bfloat16"]
    for r in rows:
        reference = {"train": "ref_train", "infer": "ref_infer"}.get(r["kind"])
        if reference and "photo" not in r:  # the reference has no full-resolution path to compare with
            base = next(x for x in rows if x["kind"] == reference and x["batch"] == r["batch"]
                        and x.get("data") == r.get("data") and x.get("frozen") == r.get("frozen"))
            r["vs_reference"] = r["img_per_s"] / base["img_per_s"]
            r["rss_vs_reference"] = r["peak_rss_mib"] / base["peak_rss_mib"]


def training_bounds(rows: list[dict[str, Any]], native_bf16: bool) -> list[dict[str, Any]]:
    """The fastest a training step could be at each batch size: its FLOPs at the matmul ceiling of the precision
    the CPU runs natively (bfloat16 where it has AVX512_BF16 or AMX, else float32: emulated bf16 is slower than
    fp32) plus the measured Adam update (which does not shrink with the batch), run one after the other, and that
    speed as a fraction of the ceiling. `measured_of_bound` is the best training row of that precision (the one
    `--precision auto` picks) against the bound. Everything else a step does (normalisation, activations, casts,
    thin layers) adds."""
    precision, training = ("bfloat16", "mixed_bfloat16") if native_bf16 else ("float32", "fp32")
    optimiser = next((r for r in rows if r["kind"] == "optimiser"), None)
    ceiling = next((r for r in rows if r["kind"] == "matmul" and r["precision"] == precision), None)
    if optimiser is None or ceiling is None:
        return []
    ceiling_flops = ceiling["gflops"] * 1e9
    bounds = []
    for batch in sorted({r["batch"] for r in rows if r["kind"] == "train"}):
        flops = next(r["flops_per_call"] for r in rows if r["kind"] == "train" and r["batch"] == batch)
        compute, update = flops / ceiling_flops, statistics.median(optimiser["seconds"])
        img_per_s = batch / (compute + update)
        measured = [r for r in rows if r["kind"] == "train" and r["batch"] == batch
                    and r["precision"] == training and not r.get("jit") and not r.get("data")]
        bounds.append({"batch": batch, "ceiling": precision, "compute_ms": compute * 1e3,
                       "optimiser_ms": update * 1e3, "img_per_s": img_per_s,
                       "of_ceiling": img_per_s * flops / batch / ceiling_flops,
                       "measured_of_bound": max((r["img_per_s"] for r in measured), default=0.0) / img_per_s})
    return bounds


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table that goes into bench/README.md."""
    lines = ["| row | batch | precision | img/s median (min-max) | GFLOP/s | of fp32 / bf16 ceiling | "
             "peak RSS MiB | vs reference |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] in FLOOR_KINDS:
            continue
        if r["kind"] == "matmul":
            spread = [r["flops_per_call"] / s / 1e9 for s in r["seconds"]]
            lines.append(f"| {r['name']} | - | {r['precision']} | - | {r['gflops']:.0f} "
                         f"({min(spread):.0f}-{max(spread):.0f}) | - | {r['peak_rss_mib']:.0f} | - |")
            continue
        ratio = f"{r['vs_reference']:.2f}x (RSS {r['rss_vs_reference']:.2f}x)" if "vs_reference" in r else "-"
        lines.append(f"| {r['name']} | {r['batch']} | {r['precision']} | {r['img_per_s']:.2f} "
                     f"({r['img_per_s_min']:.2f}-{r['img_per_s_max']:.2f}) | {r['gflops']:.0f} | "
                     f"{r['of_fp32_ceiling']:.0%} / {r['of_bf16_ceiling']:.0%} | {r['peak_rss_mib']:.0f} | {ratio} |")
    return "\n".join(lines)


def floors_table(rows: list[dict[str, Any]], bounds: list[dict[str, Any]]) -> str:
    """The Markdown tables of the floors (bandwidth, Adam) and of the training bounds they give."""
    lines = ["| floor | ms per call median (min-max) | GB/s | what |", "|---|---|---|---|"]
    for r in (r for r in rows if r["kind"] in FLOOR_KINDS):
        ms = [s * 1e3 for s in r["seconds"]]
        what = (f"{r['parameters'] / 1e6:.1f} M parameters, {ADAM_BYTES_PER_PARAMETER} bytes each" if "parameters" in r
                else f"{r['bytes_per_call'] / 2**20:.0f} MiB moved")
        lines.append(f"| {r['name']} | {statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f}) | "
                     f"{r['gb_per_s']:.1f} | {what} |")
    if bounds:
        lines += ["", "| training bound | ceiling | FLOPs at the ceiling ms | + Adam ms | = img/s | of the ceiling | "
                  "best row of that precision, of the bound |", "|---|---|---|---|---|---|---|"]
        lines += [f"| batch {b['batch']} | {b['ceiling']} | {b['compute_ms']:.1f} | {b['optimiser_ms']:.1f} | "
                  f"{b['img_per_s']:.2f} | {b['of_ceiling']:.0%} | {b['measured_of_bound']:.0%} |" for b in bounds]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """CPU model, core count and the bf16 flags TensorFlow's oneDNN can use."""
    model, flags = platform.processor(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    return {"cpu": model, "cores": os.cpu_count(), "bf16_flags": sorted(flags & {"avx512_bf16", "amx_bf16"}),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per row (median and spread)")
    parser.add_argument("--steps", type=int, default=5, help="calls per timed repeat")
    parser.add_argument("--rounds", type=int, default=2, help="passes over all rows (timings pooled)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (the first one traces)")
    parser.add_argument("--only", default="", help="comma-separated substrings: measure only matching rows "
                                                   "(the ceiling and floor rows always run)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 64 px, tiny networks, 1-2 steps")
    parser.add_argument("--out", type=Path, default=Path("bench/speed.json"))
    parser.add_argument("--_one", dest="one", help=argparse.SUPPRESS)
    parser.add_argument("--_export", dest="export", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export:
        export_child(json.loads(args.export))
        return
    if args.one:
        payload = json.loads(args.one)
        child(payload["specs"], payload["opts"])
        return

    rows = [r for r in ROWS if r["kind"] in ("matmul", *FLOOR_KINDS) or not args.only
            or any(s.strip() in f"{r['name']} b{r['batch']}" for s in args.only.split(","))]
    if args.quick:
        opts = {"size": 64, "filters": 8, "warmup": 1, "repeats": 2, "steps": 1, "matmul_n": 256,
                "stream_n": 2**18}
        # One row per kind and weight setting (batch 1, default precision), in three shared processes, two at a
        # time: the smoke test stays short; isolation is what the full run is for.
        rows = [r for r in rows if r["batch"] <= 1 and r.get("precision", "auto") == "auto"]
        groups = [[r for r in rows if r["kind"] in kinds and r.get("frozen") == frozen] for kinds, frozen in
                  ((("matmul", "memory", "ref_train", "ref_infer"), None), (("optimiser", "train", "infer"), None),
                   (("ref_infer", "infer"), True))]
        measured = run_children([g for g in groups if g], opts, parallel=2)
    else:
        opts = {"size": args.size, "filters": 64, "warmup": args.warmup, "repeats": args.repeats,
                "steps": args.steps, "matmul_n": 4096, "stream_n": 2**26, "rounds": args.rounds}
        # Every row once per round, so load from other processes drifting over minutes hits all rows alike.
        rounds = [run_children([[r] for r in rows], opts, parallel=1) for _ in range(args.rounds)]
        measured = [merge(same) for same in zip(*rounds, strict=True)]
    summarise(measured)
    host = machine()
    bounds = training_bounds(measured, native_bf16=bool(host["bf16_flags"]))
    result = {"machine": host, "options": {**opts, "quick": args.quick}, "rows": measured, "bounds": bounds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['machine']['cpu']}, {result['machine']['cores']} cores, {result['machine']['date']}, "
          f"{opts['size']} px, {opts.get('rounds', 1)} rounds x {opts['repeats']} x {opts['steps']} calls after "
          f"{opts['warmup']} warm-up")
    print(table(measured) + "\n")
    print(floors_table(measured, bounds))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
