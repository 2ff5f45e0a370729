"""Colorize photos with an exported model: `python -m pix2pix_tf.colorize --model DIR INPUT... --out DIR`.

INPUTs are image files or folders (searched recursively for IMAGE_EXTENSIONS), grey or colour (colour is turned
grey first), any size. Each becomes a PNG in --out: a file given directly as OUT/<stem>.png, a file found in a
folder as OUT/<folder name>/<path inside the folder>.png (a clashing name gets -2, -3, ...). Files that cannot
be read or that the model refuses (smaller than its minimum size) are skipped and named, with a count at the
end. Exit status: 0 when at least one image was colorized, 1 when none was, 2 for a bad model or no inputs.
"""

from __future__ import annotations

from pix2pix_tf.cli import quiet_tensorflow_start

quiet_tensorflow_start()  # before TensorFlow's import

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from pix2pix_tf.cli import inference_process, run_cli  # noqa: E402
from pix2pix_tf.datasource import write_skipped_list  # noqa: E402
from pix2pix_tf.errors import UserError  # noqa: E402

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_GREY_MODES = ("1", "L", "LA", "La")


def find_inputs(paths: list[Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """([(image file, output path relative to --out)], ["path: reason" for inputs that do not exist])."""
    found: list[tuple[Path, Path]] = []
    missing: list[str] = []
    for path in paths:
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            found += [(f, Path(path.resolve().name) / f.relative_to(path).with_suffix(".png")) for f in files]
        elif path.is_file():
            found.append((path, Path(path.stem + ".png")))
        else:
            missing.append(f"{path}: no such file or folder")
    used: set[Path] = set()
    unique = []
    for source, target in found:
        candidate, number = target, 1
        while candidate in used:
            number += 1
            candidate = target.with_name(f"{target.stem}-{number}.png")
        used.add(candidate)
        unique.append((source, candidate))
    return unique, missing


def read_image(path: Path) -> np.ndarray:
    """Any Pillow-readable image -> uint8 [H, W, 1] (grey) or [H, W, 3]; EXIF rotation applied, transparency
    composited over white, 16-bit scaled to 8-bit. Raises OSError / ValueError for unreadable files."""
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    if image.mode.startswith(("I", "F")):  # 16/32-bit grey
        values = np.asarray(image, np.float64)
        scale = 257.0 if values.max() > 255 else 1.0
        return np.clip(np.round(values / scale), 0, 255).astype(np.uint8)[..., None]
    grey = image.mode in _GREY_MODES
    if image.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    array = np.asarray(image.convert("L" if grey else "RGB"))
    return array[..., None] if grey else array


def colorize_files(model_dir: Path, inputs: list[Path], out_dir: Path) -> tuple[int, list[str]]:
    """Colorize every input image into `out_dir`; (number written, ["path: reason" for each skipped input])."""
    import tensorflow as tf
    from PIL import Image
    from tqdm import tqdm

    from pix2pix_tf.export import load_exported, refusal_reason

    model = load_exported(model_dir)
    files, skipped = find_inputs(inputs)
    if not files:
        raise UserError("no images to colorize (looked for " + ", ".join(IMAGE_EXTENSIONS) + ")"
                        + (f"; {'; '.join(skipped)}" if skipped else ""))
    written = 0
    for source, target in tqdm(files, desc="colorizing", unit="img", file=sys.stderr):
        try:
            colour = model.colorize(read_image(source))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            skipped.append(f"{source}: unreadable ({error})")
            continue
        except tf.errors.InvalidArgumentError as error:
            skipped.append(f"{source}: refused by the model ({refusal_reason(error)})")
            continue
        (out_dir / target).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(colour).save(out_dir / target)
        written += 1
    return written, skipped


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pix2pix-colorize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="exported SavedModel folder (saved_models/<dataset>)")
    parser.add_argument("--out", default="colorized", help="folder for the PNGs (default: colorized)")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`pix2pix-colorize`: 0 if anything was colorized, 1 if nothing could be, 2 for a bad model / no inputs."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        out_dir = Path(args.out)
        written, skipped = colorize_files(Path(args.model), args.inputs, out_dir)
        for reason in skipped:
            print(f"skipped {reason}", file=sys.stderr)
        listed = ""
        if skipped:
            listed = f"; skipped {len(skipped)} (listed above and in {write_skipped_list(out_dir, skipped)})"
        print(f"colorized {written} image(s) into {out_dir}{listed}")
        return 0 if written else 1

    return run_cli("pix2pix-colorize", body)


def inference_process_main(argv: list[str] | None = None) -> int:
    """`pix2pix-colorize` as a process of its own, which never trains (`cli.inference_process`)."""
    return inference_process(main, argv)


if __name__ == "__main__":
    raise SystemExit(inference_process_main())
