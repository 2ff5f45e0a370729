"""The typed Config: CLI flags and their --help groups, config.json (grouped, and older flat files), validation."""

import argparse
import dataclasses
import json
import logging

import pytest

from pix2pix_tf import config as config_module
from pix2pix_tf.config import Config, add_config_arguments, config_from_args, defaults_for
from pix2pix_tf.errors import ConfigError, UserError

GROUPS, TITLES, SMALLEST = config_module.GROUPS, config_module.GROUP_DESCRIPTIONS, config_module.MIN_IMAGE_SIZE


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser)
    return parser


def parse(argv: list[str]) -> Config:
    return config_from_args(parser().parse_args(argv))


def test_defaults_are_the_papers() -> None:
    config = Config()
    assert (config.lambda_l1, config.lr_g, config.lr_d, config.beta1) == (100.0, 2e-4, 2e-4, 0.5)
    assert (config.generator, config.d_layers, config.image_size) == ("unet", 3, 256)
    assert (config.epochs, config.epochs_decay, config.batch_size) == (100, 100, 1)


def test_every_field_is_in_exactly_one_group() -> None:
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(f.name for f in dataclasses.fields(Config))
    assert list(GROUPS) == list(TITLES) == ["data", "networks", "losses", "optimisation", "runtime", "export"]


def test_help_lists_the_flags_group_by_group() -> None:
    text = parser().format_help()
    starts = [text.index(f"\n{group}:\n  {TITLES[group]}\n") for group in GROUPS]
    assert starts == sorted(starts)
    ends = [*starts[1:], len(text)]
    sections = {group: text[start:end] for group, start, end in zip(GROUPS, starts, ends, strict=True)}
    assert "--image-size" in sections["data"] and "--lambda-l1" in sections["losses"]
    assert "--chroma-scale" in sections["export"] and "--export-dir" in sections["export"]
    assert "--lambda-l1" not in sections["export"] and "--chroma-scale" not in sections["optimisation"]


def test_flags_override_and_config_json_round_trips_grouped(tmp_path) -> None:
    config = parse(["--dataset", "forest", "--color-space", "lab", "--no-jitter", "--lambda-l1", "20",
                    "--steps", "7", "--d-steps", "2", "--chroma-scale", "0.5"])
    assert (config.color_space, config.jitter, config.lambda_l1, config.steps, config.d_steps) == (
        "lab", False, 20.0, 7, 2)
    path = tmp_path / "config.json"
    config.save(path)
    saved = json.loads(path.read_text())
    assert list(saved) == list(GROUPS)
    assert (saved["data"]["color_space"], saved["losses"]["lambda_l1"], saved["export"]["chroma_scale"]) == (
        "lab", 20.0, 0.5)
    assert Config.load(path) == config
    again = parse(["--config", str(path), "--lambda-l1", "200"])
    assert again == config.replace(lambda_l1=200.0)


def test_an_older_flat_config_loads_and_its_removed_fields_are_dropped_with_one_warning(tmp_path, caplog) -> None:
    config = Config(dataset="folder", color_space="lab", chroma_scale=0.25)
    old = {**config.to_dict(), "chroma_filter": "block", "chroma_fade_low": 0.0, "chroma_fade_high": 0.0,
           "gan_loss": "lsgan"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old, indent=2, sort_keys=True))
    with caplog.at_level(logging.WARNING):
        assert Config.load(path) == config
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert all(name in warnings[0] for name in ("chroma_filter", "chroma_fade_low", "chroma_fade_high", "gan_loss"))
    caplog.clear()
    assert Config.from_dict(config.to_dict()) == config  # an export's metadata holds the flat form
    assert Config.from_dict({**config.to_dict(), "gan_loss": "vanilla"}) == config  # what the code still does
    assert not caplog.records


@pytest.mark.parametrize("values", [{"lamda": 3}, {"losses": {"lamda": 3}}])
def test_unknown_keys_in_a_config_file_are_refused(values: dict) -> None:
    with pytest.raises(ConfigError, match="lamda"):
        Config.from_dict(values)


def test_a_config_file_that_is_not_a_config_is_a_config_error(tmp_path) -> None:
    (tmp_path / "broken.json").write_text("{\"data\": ")
    (tmp_path / "list.json").write_text("[1, 2]")
    for name in ("broken.json", "list.json"):
        with pytest.raises(ConfigError, match=name):
            Config.load(tmp_path / name)


def test_dataset_presets_apply_only_where_no_flag_is_given() -> None:
    assert parse(["--dataset", "sample"]).image_size == defaults_for("sample").image_size == 128
    assert parse(["--dataset", "sample", "--image-size", "64"]).image_size == 64
    assert parse(["--dataset", "opencountry"]).image_size == 256
    # Colorizing one's own photos: Lab, the averaged generator and the study's fuzzy labels (docs/results.md);
    # the study's own sets keep the paper's exact labels.
    folder = parse(["--dataset", "folder"])
    assert (folder.color_space, folder.g_ema, folder.label_fuzz) == ("lab", 0.999, 0.1)
    assert parse(["--dataset", "folder", "--label-fuzz", "0"]).label_fuzz == 0.0
    assert parse(["--dataset", "opencountry"]).label_fuzz == 0.0


@pytest.mark.parametrize("change,message", [
    ({"color_space": "hsv"}, "color_space"),
    ({"image_size": 96}, "image_size must be a power of 2"),  # a multiple of 32: the U-Net needs a power of 2
    ({"image_size": 100}, "image_size must be a power of 2"),
    ({"image_size": SMALLEST // 2}, f"from {SMALLEST} up"),
    ({"ngf": "64"}, "ngf"),
    ({"label_fuzz": 1.5}, "label_fuzz"),
    ({"d_steps": 0}, "d_steps"),
    ({"chroma_smoothing": 0}, "chroma_smoothing"),
])
def test_bad_values_are_refused_with_the_field_name(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        Config().replace(**change)
    assert isinstance(refused.value, UserError) and isinstance(refused.value, ValueError)


def test_every_power_of_two_from_the_smallest_size_is_accepted() -> None:
    assert [Config().replace(image_size=SMALLEST * 2**i).image_size for i in range(5)] == [
        16, 32, 64, 128, 256]


def test_the_networks_build_and_train_at_the_smallest_size() -> None:
    import tensorflow as tf

    from pix2pix_tf.models import build_discriminator, build_generator

    for config in (Config(image_size=SMALLEST, ngf=4, ndf=4, batch_size=2),
                   Config(image_size=SMALLEST, ngf=4, ndf=4, color_space="lab")):
        generator, discriminator = build_generator(config), build_discriminator(config)
        channels = 1 if config.color_space == "lab" else 3
        inputs = tf.random.uniform([2, SMALLEST, SMALLEST, channels], -1.0, 1.0)
        with tf.GradientTape() as tape:
            outputs = generator(inputs, training=True)
            logits = discriminator([inputs, outputs], training=True)
            loss = tf.reduce_mean(logits) + tf.reduce_mean(outputs)
        weights = generator.trainable_weights + discriminator.trainable_weights
        assert all(gradient is not None for gradient in tape.gradient(loss, weights))
        assert outputs.shape[1:3] == (SMALLEST, SMALLEST) and logits.shape[1:3] == (2, 2)
