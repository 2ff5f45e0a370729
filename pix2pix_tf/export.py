"""The SavedModel that other TensorFlow programs load: uint8 photos in, uint8 colour photos out.

`export_generator` writes a SavedModel with Keras 3's `keras.export.ExportArchive`. Loading it needs only
TensorFlow (`tf.saved_model.load(path)`), never this package. All pre- and postprocessing is in the graph.

Endpoints (each is a method of the loaded object and a SavedModel signature; `saved_model_cli show --all`
lists them):

* ``colorize(images)``, also the ``serving_default`` signature: uint8 ``[N, H, W, C]`` with C = 1 (grey) or
  3 (colour, turned grey first), any H and W of at least `MIN_SIDE` pixels -> uint8 ``[N, H, W, 3]``.
  One signature serves both channel counts: its input shape is ``[-1, -1, -1, -1]`` and the graph checks C.
  "Grey" is the luminance the network was trained on: BT.601 luma for rgb models, CIE L* for lab models.
  The grey picture is resized to the working size (``config.image_size``) and scaled to [-1, 1]; the
  generator runs in inference mode (``training=False``). With ``full_resolution`` (the default) the output's
  chroma (Lab ab; for rgb models taken from the RGB output) is resized back to H x W and joined with the
  luminance L* of the full-resolution grey input, so fine detail survives; otherwise the network's colour
  picture itself is resized back to H x W. Before that the chroma (Lab ab, at the working size) is smoothed
  by a guided filter (`guided_chroma`: averaged over windows of radius ``chroma_smoothing`` where the
  luminance is flat, following the luminance's edges elsewhere), then multiplied by the export's
  ``chroma_scale`` (`applied_chroma_scale`: the calibrated factor, 1 = the network's own colours, 0 = grey).
  The colour conversions are compiled by XLA where their shape is fixed by the working size (the network's
  output always; the input and the final join for photos of the working size, one compilation per batch
  size), and run as plain TensorFlow ops for photos of other sizes.
* ``colorize_bytes(encoded)``: string ``[N]`` of encoded JPEG / PNG / GIF / BMP images (sizes may differ)
  -> string ``[N]`` of PNG-encoded colour images.
* ``metadata()``: a scalar string tensor holding JSON with ``config`` (the full training Config),
  ``color_space``, ``paired`` (a paired-set model, e.g. facades: RGB in, RGB out, no grey and no luminance
  join), ``chroma_scale`` (the factor applied to ab), ``chroma_smoothing``, ``step``, ``dataset``,
  ``image_size``, ``full_resolution``, ``min_side``, ``package_version``, ``format`` and ``endpoints``.
  Read it with ``json.loads(tf.saved_model.load(path).metadata().numpy())``.

Via signatures (TF Serving, `saved_model_cli run`) the inputs are named ``images`` / ``encoded`` and each
output is ``output_0``. Note that TensorFlow casts a *NumPy* float array passed to the ``colorize`` method to
uint8 before the graph sees it (so [0, 1] floats come out black); float `tf.Tensor`s and any float input to
a signature are refused with a dtype error.

The generator runs in its inference forms (`layer_forms.apply_layer_forms`). `load_exported` is the loader
the evaluate and colorize tools share (TensorFlow only, no Keras); exports of earlier versions, whose metadata
has other keys, load and serve the same way.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from pix2pix_tf import __version__, color, sources
from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError

if TYPE_CHECKING:
    import keras

MIN_SIDE = 8  # smallest height / width the exported model accepts, in pixels
FORMAT = "pix2pix-tf-colorizer/1"
ENDPOINTS = ("colorize", "colorize_bytes", "metadata")


def metadata_for(config: Config, step: int) -> dict[str, Any]:
    """The facts that travel with an export (see the module docstring)."""
    return {
        "format": FORMAT,
        "package_version": __version__,
        "step": int(step),
        "dataset": config.dataset,
        "color_space": config.color_space,
        "paired": sources.is_paired(config),
        "image_size": config.image_size,
        "full_resolution": config.full_resolution,
        "chroma_scale": applied_chroma_scale(config),
        "chroma_smoothing": config.chroma_smoothing,
        "min_side": MIN_SIDE,
        "endpoints": list(ENDPOINTS),
        "config": config.to_dict(),
    }


def applied_chroma_scale(config: Config) -> float:
    """The factor the export multiplies the output's ab by: `config.chroma_scale`, 1.0 while not chosen."""
    return 1.0 if config.chroma_scale is None else float(config.chroma_scale)


GUIDE_EPSILON = 1e-3  # a window whose L* / 100 varies less than this (std about 3 L*) counts as flat


def box_mean(x: tf.Tensor, radius: int) -> tf.Tensor:
    """The mean of `x` [N, H, W, C] over the (2 radius + 1)^2 window around each pixel, of the pixels inside the
    picture (what avg_pool2d's 'SAME' computes), as a column sum then a row sum (two depthwise convolutions of
    ones): 2 (2 radius + 1) additions a pixel where avg_pool2d makes (2 radius + 1)^2 (bench/README.md)."""
    size = 2 * radius + 1
    channels = x.shape[-1]

    def window_sum(values: tf.Tensor, n: int) -> tf.Tensor:
        columns = tf.nn.depthwise_conv2d(values, tf.ones([size, 1, n, 1], values.dtype), [1, 1, 1, 1], "SAME")
        return tf.nn.depthwise_conv2d(columns, tf.ones([1, size, n, 1], values.dtype), [1, 1, 1, 1], "SAME")

    return window_sum(x, channels) / window_sum(tf.ones_like(x[:1, :, :, :1]), 1)


def guided_chroma(ab: tf.Tensor, lightness: tf.Tensor, radius: int) -> tf.Tensor:
    """ab [N, S, S, 2] smoothed over (2 radius + 1)^2 windows where the lightness L* [N, S, S, 1] is flat, and
    following L*'s edges where it is not: He et al.'s guided filter (2010) with L* / 100 as the guide (1:
    unchanged). The network's chroma is blotchy where the photo is flat; its true edges are mostly L*'s."""
    if radius <= 1:
        return ab
    guide = lightness / 100.0

    def box(x: tf.Tensor) -> tf.Tensor:
        return box_mean(x, radius)

    mean_guide, mean_ab = box(guide), box(ab)
    slope = (box(guide * ab) - mean_guide * mean_ab) / (box(guide * guide) - mean_guide**2 + GUIDE_EPSILON)
    offset = mean_ab - slope * mean_guide
    return box(slope) * guide + box(offset)


def _check_images(images: tf.Tensor) -> tf.Tensor:
    """In-graph checks with messages a caller can act on; returns the images once they have passed."""
    shape = tf.shape(images)
    checks = [
        tf.debugging.assert_equal(
            tf.logical_or(tf.equal(shape[3], 1), tf.equal(shape[3], 3)), True,
            message="colorize: images must have 1 (grey) or 3 (colour) channels, shape [N, H, W, C]"),
        tf.debugging.assert_greater_equal(
            tf.minimum(shape[1], shape[2]), MIN_SIDE,
            message=f"colorize: images must be at least {MIN_SIDE}x{MIN_SIDE} pixels (height and width)"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(images)


def _resized(images: tf.Tensor, size: list, antialias: bool = False) -> tf.Tensor:
    """`tf.image.resize` to `size` ([height, width]), skipped when the pictures already have that size."""
    same = tf.reduce_all(tf.equal(tf.shape(images)[1:3], tf.cast(tf.stack(size), tf.int32)))
    return tf.cond(same, lambda: tf.identity(images),
                   lambda: tf.image.resize(images, size, antialias=antialias))


def _grey_input(images: tf.Tensor, color_space: str) -> tuple[tf.Tensor, tf.Tensor]:
    """uint8 colour pictures [N, H, W, 3] -> (their grey version's CIE L* [N, H, W, 1], the network's input in
    [-1, 1]: BT.601 luma in 3 channels for rgb models, L* for lab models)."""
    if color_space == "rgb":
        grey = color.rgb_to_gray(tf.cast(images, tf.float32) / 255.0)
        return color.rgb_to_lightness(grey), tf.repeat(color.from_unit(grey), 3, axis=-1)
    lightness = color.linear_to_lightness(color.uint8_to_linear(images))
    return lightness, lightness / color.L_SCALE - 1.0


def _network_lab(network_input: tf.Tensor, network_output: tf.Tensor, color_space: str) -> tuple[tf.Tensor, tf.Tensor]:
    """The network's input and output -> the picture it made as (L* [..., 1], a*b* [..., 2])."""
    if color_space == "rgb":
        lab = color.rgb_to_lab(color.output_to_rgb(network_input, network_output, "rgb"))
        return lab[..., :1], lab[..., 1:]
    return (network_input + 1.0) * color.L_SCALE, network_output * color.AB_SCALE


def _lab_to_uint8(lightness: tf.Tensor, ab: tf.Tensor) -> tf.Tensor:
    """(L* [..., 1], a*b* [..., 2]) -> uint8 sRGB [..., 3]."""
    return tf.cast(tf.round(color.lab_to_rgb(tf.concat([lightness, ab], axis=-1)) * 255.0), tf.uint8)


# The colour conversions compiled by XLA: each is a chain of element-wise passes over the picture (gamma and
# cube-root curves, 3x3 products) that XLA runs as one loop, faster on a CPU (bench/README.md, "What the speed rests
# on": "The colour graph under XLA, where its shape is fixed"). XLA compiles once per input shape, so they are used
# where the shape is fixed by the working size; pictures of other sizes take the plain ops.
_grey_input_xla = tf.function(_grey_input, jit_compile=True, autograph=False)
_network_lab_xla = tf.function(_network_lab, jit_compile=True, autograph=False)
_lab_to_uint8_xla = tf.function(_lab_to_uint8, jit_compile=True, autograph=False)


def colorize_graph(images: tf.Tensor, generator: keras.Model, config: Config, paired: bool = False,
                   chroma_scale: tf.Tensor | None = None) -> tf.Tensor:
    """uint8 [N, H, W, 1 or 3] -> uint8 [N, H, W, 3]: the whole exported computation (see module docstring).

    `chroma_scale`, a scalar tensor, replaces the config's factor on ab: one traced graph then tries many.

    A model of a paired set (facades, ...) translates its RGB input as it is: no grey, no luminance join.
    Pictures of the working size have their colour conversions computed by XLA (`_grey_input_xla`, ...).
    """
    images = _check_images(images)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    # Grey inputs become 3 equal channels so one path serves both (the checks allow only C in {1, 3}).
    images = tf.ensure_shape(tf.tile(images, [1, 1, 1, 3 // tf.shape(images)[3]]), [None, None, None, 3])
    working_size = [config.image_size] * 2
    if paired:
        small_input = _resized(color.from_unit(tf.cast(images, tf.float32) / 255.0), working_size, antialias=True)
        small_output = color.to_unit(generator(small_input, training=False))
        out = _resized(small_output, [height, width])
        return tf.cast(tf.round(tf.clip_by_value(out, 0.0, 1.0) * 255.0), tf.uint8)
    space = config.color_space
    at_working_size = tf.logical_and(tf.equal(height, config.image_size), tf.equal(width, config.image_size))
    lightness, network_input = tf.cond(at_working_size, lambda: _grey_input_xla(images, space),
                                       lambda: _grey_input(images, space))
    small_input = _resized(network_input, working_size, antialias=True)
    small_output = tf.cast(generator(small_input, training=False), tf.float32)
    small_lightness, small_ab = _network_lab_xla(small_input, small_output, space)
    small_ab = guided_chroma(small_ab, small_lightness, config.chroma_smoothing)
    if chroma_scale is not None:
        small_ab = small_ab * tf.cast(chroma_scale, small_ab.dtype)
    elif (scale := applied_chroma_scale(config)) != 1.0:
        small_ab = small_ab * scale
    if not config.full_resolution:
        # lab_to_rgb's output is in [0, 1] already, and a bilinear resize keeps it there.
        small_rgb = color.lab_to_rgb(tf.concat([small_lightness, small_ab], axis=-1))
        return tf.cast(tf.round(_resized(small_rgb, [height, width]) * 255.0), tf.uint8)
    ab = _resized(small_ab, [height, width])
    return tf.cond(at_working_size, lambda: _lab_to_uint8_xla(lightness, ab), lambda: _lab_to_uint8(lightness, ab))


def export_generator(generator: keras.Model, config: Config, export_dir: str | Path, step: int) -> Path:
    """Write the colorizing SavedModel of `generator` to `export_dir` (replacing an earlier export there).

    The archive is written next to the target first and moved into place, so a reader never sees half an
    export. A non-empty `export_dir` that is not a SavedModel is left alone (UserError).
    """
    import keras

    from pix2pix_tf.layer_forms import apply_layer_forms

    export_dir = Path(export_dir)
    if export_dir.exists() and any(export_dir.iterdir()) and not (export_dir / "saved_model.pb").exists():
        raise UserError(f"{export_dir} exists and is not a SavedModel; choose another --export-dir")
    if config.color_space not in ("rgb", "lab"):
        raise UserError(f"cannot export color_space={config.color_space!r}")
    metadata_values = metadata_for(config, step)
    paired = metadata_values["paired"]
    meta_json = json.dumps(metadata_values, sort_keys=True)
    generator = apply_layer_forms(generator, config, "inference")

    def colorize(images: tf.Tensor) -> tf.Tensor:
        return colorize_graph(images, generator, config, paired)

    def colorize_one(encoded: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.io.encode_png(colorize(image[None])[0])

    def colorize_bytes(encoded: tf.Tensor) -> tf.Tensor:
        return tf.map_fn(colorize_one, encoded, fn_output_signature=tf.TensorSpec([], tf.string))

    def metadata() -> tf.Tensor:
        return tf.constant(meta_json)

    # No archive.track(generator): the endpoints capture the variables already, and tracking the model too
    # would store every weight twice (once as Keras variables), doubling the export's size.
    archive = keras.export.ExportArchive()
    archive.add_endpoint("colorize", colorize,
                         input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name="images")])
    archive.add_endpoint("colorize_bytes", colorize_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string, name="encoded")])
    archive.add_endpoint("metadata", metadata, input_signature=[])

    export_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = export_dir.with_name(export_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    archive.write_out(str(staging), verbose=False)
    shutil.rmtree(export_dir, ignore_errors=True)
    staging.rename(export_dir)
    return export_dir


@dataclass
class ExportedModel:
    """A loaded colorizing SavedModel: ours, or any whose `serving_default` maps uint8 [N, H, W, C] to
    uint8 [N, H, W, 3]. `metadata` is our export's metadata, or {} for a SavedModel without it."""

    path: Path
    metadata: dict[str, Any]
    signature: Any  # the serving_default ConcreteFunction
    input_name: str

    @property
    def color_space(self) -> str:
        return self.metadata.get("color_space", "rgb")

    def colorize(self, image: np.ndarray) -> np.ndarray:
        """uint8 [H, W] or [H, W, C] -> uint8 [H, W, 3]; tf.errors.InvalidArgumentError if the model refuses it."""
        image = np.asarray(image, np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        outputs = self.signature(**{self.input_name: tf.constant(image[None])})
        return next(iter(outputs.values()))[0].numpy()


def refusal_reason(error: tf.errors.InvalidArgumentError) -> str:
    """The message of an in-graph check (e.g. "colorize: images must be at least 8x8 pixels ...")."""
    match = re.search(r"assertion failed: \[([^\]]*)\]", error.message)
    return match.group(1) if match else error.message.strip().splitlines()[-1]


def load_exported(path: str | Path) -> ExportedModel:
    """`tf.saved_model.load` with one clear UserError for each way a model folder can be wrong."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model folder {path} does not exist (train.py exports to saved_models/<dataset>)")
    if not (path / "saved_model.pb").is_file():
        raise UserError(f"{path} is not a SavedModel (no saved_model.pb in it)")
    try:
        loaded = tf.saved_model.load(str(path))
    except (ValueError, OSError, tf.errors.OpError) as error:
        raise UserError(f"cannot load the SavedModel in {path}: {str(error).splitlines()[0]}") from error
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise UserError(f"the SavedModel in {path} has no serving_default signature")
    specs = signature.structured_input_signature[1]
    spec = next(iter(specs.values()), None)
    if len(specs) != 1 or spec.dtype != tf.uint8 or spec.shape.rank not in (None, 4):
        raise UserError(f"the serving_default of {path} does not take one uint8 [N, H, W, C] tensor: {specs}")
    metadata = json.loads(loaded.metadata().numpy()) if hasattr(loaded, "metadata") else {}
    return ExportedModel(path=path, metadata=metadata, signature=signature, input_name=next(iter(specs)))
