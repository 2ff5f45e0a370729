"""Time of every convolution of G and D in each of its forms, on this CPU: the data behind `layer_forms`' rules.

    python bench/layer_speed.py [--size 256] [--batch 1,4] [--precision auto] [--repeats 15] [--out FILE.json]
    TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1 python bench/layer_speed.py --inference --batch 1,8

Training (the default): for each 4x4 (transposed) convolution of the default generator and discriminator, fed
the pixels it is fed at `--size`, one tf.function runs the layer forward and computes the gradients a training
step needs (its kernel's, and its input's except for a network's first layer), in every training form
`layer_forms` offers for it: Keras's layer, `MatmulConv2D`, `MatmulGradientConv2D`, `MatmulConv2DTranspose`.
`--inference`: the generator's layers forward only, in the export's forms (Keras's layer, `MatmulConv2D`,
`MatmulConv2DTranspose`, `PhaseDeconvolution`, `SubPixelDeconvolution`), with the weights in the compute dtype
as the export holds them; run it with and without frozen weights, as the inference tools and other programs
load the export.

It prints, per batch size, one row per layer: the median ms of each form, the fastest, and the form the rules
(`layer_forms.training_form` / `inference_form`) give it on this CPU, and the sums over the layers of Keras's
forms, the rules' and the fastest. Numbers are from one process, the forms of a layer alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402
from speed import machine  # noqa: E402  (bench/speed.py, beside this script)

from pix2pix_tf import layer_forms, runtime  # noqa: E402
from pix2pix_tf.cli import FROZEN_WEIGHTS_VARIABLE  # noqa: E402
from pix2pix_tf.config import Config  # noqa: E402
from pix2pix_tf.models import build_discriminator, build_generator  # noqa: E402

TRAINING_FORMS: dict[type, tuple[type, ...]] = {
    layers.Conv2D: (layers.Conv2D, layer_forms.MatmulConv2D, layer_forms.MatmulGradientConv2D),
    layers.Conv2DTranspose: (layers.Conv2DTranspose, layer_forms.MatmulConv2DTranspose),
}
INFERENCE_FORMS: dict[type, tuple[type, ...]] = {
    layers.Conv2D: (layers.Conv2D, layer_forms.MatmulConv2D),
    layers.Conv2DTranspose: (layers.Conv2DTranspose, layer_forms.MatmulConv2DTranspose,
                             layer_forms.PhaseDeconvolution, layer_forms.SubPixelDeconvolution),
}


def candidate_forms(layer: layers.Layer, inference: bool) -> tuple[type, ...]:
    """The forms that compute `layer`: the matrix-product convolution only at stride 2, the phase form only
    without bias."""
    forms = (INFERENCE_FORMS if inference else TRAINING_FORMS)[type(layer)]
    if isinstance(layer, layers.Conv2D) and layer.strides[0] != 2:
        forms = tuple(form for form in forms if form is not layer_forms.MatmulConv2D)
    if getattr(layer, "use_bias", False):
        forms = tuple(form for form in forms if form is not layer_forms.PhaseDeconvolution)
    return forms


def copy_in_form(template: layers.Layer, form: type, inference: bool) -> layers.Layer:
    """A new layer of `form` computing `template`'s function (weights drawn afresh), in the compute dtype for
    inference as the export holds it."""
    dtype = template.compute_dtype if inference else template.dtype_policy.name
    if form in (layer_forms.PhaseDeconvolution, layer_forms.SubPixelDeconvolution):
        return form(template.filters, dtype=dtype)
    return form.from_config({**template.get_config(), "dtype": dtype})


def inference_function(layer: layers.Layer) -> Any:
    return tf.function(lambda x, upstream: [layer(x)])


def step_function(layer: layers.Layer, needs_input_gradient: bool) -> Any:
    @tf.function
    def step(x: tf.Tensor, upstream: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x), tf.float32) * upstream)
        sources = [x, layer.kernel] if needs_input_gradient else [layer.kernel]
        return tape.gradient(loss, sources)

    return step


def time_forms(template: layers.Layer, shape: tuple[int, ...], needs_input_gradient: bool, inference: bool,
               repeats: int) -> dict[str, float]:
    """Median ms per call of each form of `template` on inputs of `shape`, the forms alternating."""
    x = tf.cast(tf.random.normal(shape, seed=1), template.compute_dtype if inference else tf.float32)
    steps, upstream = {}, None
    for form in candidate_forms(template, inference):
        layer = copy_in_form(template, form, inference)
        layer.build(shape)
        if upstream is None:
            upstream = tf.random.normal(template.compute_output_shape(shape), seed=2)
        steps[form.__name__] = (inference_function(layer) if inference
                                else step_function(layer, needs_input_gradient))
        for _ in range(2):
            steps[form.__name__](x, upstream)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            _ = [g.numpy() for g in step(x, upstream)]
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in times.items()}


def measure(config: Config, inference: bool, repeats: int) -> list[dict[str, Any]]:
    plain = config.replace(layer_forms="plain")
    networks = [build_generator(plain)] if inference else [build_generator(plain), build_discriminator(plain)]
    rows = []
    for network in networks:
        sides = layer_forms.fed_sides(network, config.image_size)
        convolutions = list(sides)
        chosen = layer_forms.chosen_forms(network, config, "inference" if inference else "train")
        for layer in network.layers:
            if layer.name not in sides or not layer_forms.is_4x4_same(layer):
                continue
            side = sides[layer.name]
            shape = (config.batch_size, side, side, layer.input.shape[-1])
            first = layer.name == convolutions[0]
            times = time_forms(layer, shape, needs_input_gradient=not first, inference=inference, repeats=repeats)
            rows.append({"network": network.name, "layer": layer.name, "fed_side": side,
                         "channels": f"{shape[-1]} -> {layer.filters}", "stride": layer.strides[0],
                         "ms": times, "fastest": min(times, key=times.get), "rules": chosen[layer.name].__name__})
            print(f"  {layer.name:16s} {side:4d} px  " + "  ".join(f"{k} {v:.2f}" for k, v in times.items()),
                  flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    names = sorted({name for row in rows for name in row["ms"]})
    lines = ["| layer | fed px | channels | " + " | ".join(names) + " | fastest | rules |",
             "|---|---|---|" + "---|" * len(names) + "---|---|"]
    for row in rows:
        cells = [f"{row['ms'][n]:.2f}" if n in row["ms"] else "-" for n in names]
        lines.append(f"| {row['layer']} | {row['fed_side']} | {row['channels']} | " + " | ".join(cells)
                     + f" | {row['fastest']} | {row['rules']} |")
    rules = sum(row["ms"][row["rules"]] if row["rules"] in row["ms"] else row["ms"][next(iter(row["ms"]))]
                for row in rows)
    fastest = sum(min(row["ms"].values()) for row in rows)
    plain = sum(next(iter(row["ms"].values())) for row in rows)
    lines.append(f"\nsum over layers, ms: Keras's layers {plain:.1f}, the rules' forms {rules:.1f}, "
                 f"the fastest forms {fastest:.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", default="1,4", help="comma-separated batch sizes")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--inference", action="store_true", help="the generator's export forms, forward only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = {"machine": {**machine(), "frozen_weights": os.environ.get(FROZEN_WEIGHTS_VARIABLE) == "1"},
               "size": args.size, "purpose": "inference" if args.inference else "train", "tables": {}}
    for batch in [int(b) for b in args.batch.split(",")]:
        config = Config(image_size=args.size, batch_size=batch, precision=args.precision)
        precision = runtime.apply_precision(config)
        print(f"batch {batch}, {precision}:", flush=True)
        rows = measure(config, args.inference, args.repeats)
        print(table(rows), flush=True)
        results["tables"][str(batch)] = {"precision": precision, "rows": rows}
        keras.mixed_precision.set_global_policy("float32")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
