"""The typed Config: CLI flags, JSON round trip, validation."""

import argparse

import pytest

from pix2pix_tf.config import Config, add_config_arguments, config_from_args, defaults_for


def parse(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_defaults_are_the_papers() -> None:
    config = Config()
    assert (config.lambda_l1, config.lr_g, config.lr_d, config.beta1) == (100.0, 2e-4, 2e-4, 0.5)
    assert (config.generator, config.gan_loss, config.d_layers, config.image_size) == ("unet", "vanilla", 3, 256)
    assert (config.epochs, config.epochs_decay, config.batch_size) == (100, 100, 1)


def test_flags_override_and_json_round_trips(tmp_path) -> None:
    config = parse(["--dataset", "forest", "--color-space", "lab", "--no-jitter", "--lambda-l1", "20",
                    "--steps", "7", "--d-steps", "2", "--chroma-fade-low", "10", "--chroma-fade-high", "40"])
    assert (config.color_space, config.jitter, config.lambda_l1, config.steps, config.d_steps) == (
        "lab", False, 20.0, 7, 2)
    assert (config.chroma_fade_low, config.chroma_fade_high) == (10.0, 40.0)
    path = tmp_path / "config.json"
    config.save(path)
    assert Config.load(path) == config
    again = parse(["--config", str(path), "--lambda-l1", "200"])
    assert again == config.replace(lambda_l1=200.0)


def test_dataset_presets_apply_only_where_no_flag_is_given() -> None:
    assert parse(["--dataset", "sample"]).image_size == defaults_for("sample").image_size == 128
    assert parse(["--dataset", "sample", "--image-size", "64"]).image_size == 64
    assert parse(["--dataset", "opencountry"]).image_size == 256
    # Colorizing one's own photos: Lab, the averaged generator and the study's fuzzy labels (docs/quality.md);
    # the study's own sets keep the paper's exact labels.
    folder = parse(["--dataset", "folder"])
    assert (folder.color_space, folder.g_ema, folder.label_fuzz) == ("lab", 0.999, 0.1)
    assert parse(["--dataset", "folder", "--label-fuzz", "0"]).label_fuzz == 0.0
    assert parse(["--dataset", "opencountry"]).label_fuzz == 0.0


@pytest.mark.parametrize("change,message", [
    ({"color_space": "hsv"}, "color_space"),
    ({"image_size": 100}, "multiple of 32"),
    ({"label_fuzz": 1.5}, "label_fuzz"),
    ({"d_steps": 0}, "d_steps"),
    ({"chroma_head": "classify"}, "color_space=lab"),  # the default colour space is the study's RGB
    ({"class_rebalance": 1.5}, "class_rebalance"),
    ({"annealed_temperature": 0.0}, "annealed_temperature"),
    ({"chroma_fade_low": 40.0, "chroma_fade_high": 10.0}, "chroma_fade_low"),
    ({"chroma_fade_high": 120.0}, "chroma_fade_high"),
])
def test_bad_values_are_refused_with_the_field_name(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config().replace(**change)


def test_unknown_keys_in_a_config_file_are_refused() -> None:
    with pytest.raises(ValueError, match="lamda"):
        Config.from_dict({"lamda": 3})
