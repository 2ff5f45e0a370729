"""Colour quality on photos no model trained on: the default recipe beside the grey copy and the RGB recipe.

    python bench/quality.py [--budget 60] [--train-dir DIR | --train-set dev|wide|all] [--image-size 128]
                            [--out runs/quality] [--toy]
                            [any train.py flag, given to both trainings]

Trains two models with the project's own CLI (`train.py --dataset folder --data-dir TRAIN --time-budget B`),
one after the other, each with the same wall-clock budget:

* model: the project's defaults for colorization (plus any extra flags given here);
* rgb recipe: the study's plain recipe, grey RGB -> RGB (`--color-space rgb`) with no chroma calibration
  (`--chroma-scale 1`).

Then scores both exports with the evaluator (`pix2pix_tf.evaluate`, `--split all`) on DIFFERENT photos: the
colour photos bundled with scikit-image and scikit-learn, written to OUT/test_photos (split by photo, never
by tile). Training photos: `--train-dir`, else `--train-set`: `dev`, the dev photos that
`../shared/data/get-dev-photos` fetches, or `wide`, those plus 28 more varied real photos, none of them a
test photo: 3 of Debian's plasma-workspace-wallpapers (`apt-get download`), 24 OpenCV sample photos (from
the opencv-python source archive on PyPI, checked against its SHA-256) and matplotlib's grace_hopper.jpg; or
`all` (default: the only set on which the defaults have beaten the grey copy, docs/results.md), those plus
131 photos of animals, monuments, musicians, sea floors and objects from the educational
suite GCompris (Debian's gcompris-qt-data, read out of its compiled Qt resource bundles) and 14 photos of
Ubuntu's wallpaper contests (landscapes, a river, a sunset, a bird, a dragonfly, dogs, objects, a room) from
Debian's lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04.
`--toy` is the smoke test: a few seconds of training at 64 px on scikit-image's photos, tested on
scikit-learn's china and flower.

Writes OUT/quality.json, OUT/quality.md (the table, the budget, the machine) and the INPUT | OUTPUT | TARGET
figures OUT/quality_model.png and OUT/quality_rgb_recipe.png.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zlib
from hashlib import sha256
from pathlib import Path, PurePosixPath
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
GET_DEV_PHOTOS = REPO.parent / "shared" / "data" / "get-dev-photos"
SKIMAGE_TEST = {"astronaut": "astronaut.png", "coffee": "coffee.png", "chelsea": "chelsea.png",
                "rocket": "rocket.jpg", "motorcycle": "motorcycle_left.png"}
SKLEARN_TEST = {"china": "china.jpg", "flower": "flower.jpg"}
OPENCV_SDIST = ("https://files.pythonhosted.org/packages/79/4c/a438d23e09ce2033c09f7b784ad2fbdb0adf529e434101ed28f142"
                "226f98/opencv_python-5.0.0.93.tar.gz")
OPENCV_SHA256 = "66aac3e5b5faa48d4025816592f3af19e4bfc2c68dec067bae2dbb4ca10aa9e2"
# Real colour photos among opencv/samples/data (one of each near-duplicate pair; no drawings, charts or text).
OPENCV_PHOTOS = ("aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "building.jpg", "butterfly.jpg",
                 "castle.jpg", "chicky_512.png", "ela_original.jpg", "fruits.jpg", "gauge-1.jpg", "graf1.png",
                 "home.jpg", "left.jpg", "leuvenA.jpg", "licenseplate_motion.jpg", "mcc_ccm_test.jpg",
                 "messi5.jpg", "orange.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg")
PLASMA_PACKAGE = "plasma-workspace-wallpapers"
# The package's real colour photos not in dev (its foggy ColdRipple is skipped by the folder source as colourless).
PLASMA_PHOTOS = ("ColorfulCups", "DarkestHour", "Kite")
GCOMPRIS_PACKAGE = "gcompris-qt-data"
# The educational suite's activities whose pictures are real photos (animals, monuments, musicians, sea floors,
# objects); the others hold drawings and paintings. Kept: WebP pictures at least GCOMPRIS_MIN_SIDE px on their
# short side, except under GCOMPRIS_COPIES (categorization's crops of explore_monuments' photos).
GCOMPRIS_ACTIVITIES = ("erase", "explore_farm_animals", "explore_world_animals", "explore_monuments",
                       "explore_world_music", "clickgame", "categorization")
GCOMPRIS_MIN_SIDE = 256
GCOMPRIS_COPIES = "/images/monuments/"
LOMIRI_FOLDER = "usr/share/backgrounds"
# Ubuntu's wallpaper-contest photos (CC BY-SA), package -> files, each checked by eye: landscapes, a river in a
# forest, mountains, dandelions, a sunset, a dragonfly, a bird, dogs, a fig, paint brushes, a room, a clock, lamps.
# The packages' other files are illustrations, gradients and abstract textures.
LOMIRI_PHOTOS = {
    "lomiri-wallpapers-16.04": (
        "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
        "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
        "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
        "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg"),
    "lomiri-wallpapers-20.04": ("Kleiber_by_Lukas_Baubkus.jpg",),
}
TOY_BUDGET = 0.01  # minutes: the first step, then a clean stop
TOY_IMAGE_SIZE = 64
RECIPES = {"model": [], "rgb_recipe": ["--color-space", "rgb", "--chroma-scale", "1"]}
ROWS = (("grey copy", "grey"), ("RGB recipe", "rgb_recipe"), ("model (defaults)", "model"))
METRIC_COLUMNS = (("SSIM", "ssim", True), ("PSNR dB", "psnr", True), ("CIEDE2000", "ciede2000", False),
                  ("RMSD [0,255]", "rmsd_255", False), ("colourfulness", "colorfulness", True))


def bundled_photos(names: dict[str, str], package: str) -> dict[str, Path]:
    """Photo name -> file for photos shipped inside scikit-image ("skimage") or scikit-learn ("sklearn")."""
    if package == "skimage":
        import skimage.data

        folder = Path(skimage.data.data_dir)
    else:
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
    return {name: folder / file for name, file in names.items() if (folder / file).is_file()}


def copy_photos(photos: dict[str, Path], folder: Path) -> Path:
    """Copy photos into a fresh `folder` as NAME.ext; returns the folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, path in photos.items():
        shutil.copy(path, folder / f"{name}{path.suffix}")
    return folder


def dev_photos(folder: Path) -> Path:
    """The development photos, fetched into `folder` with get-dev-photos unless already there."""
    if folder.is_dir() and any(folder.glob("*.jpg")):
        return folder
    if not GET_DEV_PHOTOS.is_file():
        raise SystemExit(f"no --train-dir given and {GET_DEV_PHOTOS} does not exist: pass a folder of photos")
    subprocess.run([str(GET_DEV_PHOTOS), str(folder)], check=True)
    return folder


def fetch(url: str, digest: str, path: Path) -> Path:
    """`url` downloaded to `path` (kept when already there with SHA-256 `digest`); a clear exit offline."""
    if path.is_file() and sha256(path.read_bytes()).hexdigest() == digest:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            payload = response.read()
    except OSError as error:
        raise SystemExit(f"could not download {url} ({error}); place that file at {path}, or pass "
                         "--train-dir with a folder of photos") from None
    if sha256(payload).hexdigest() != digest:
        raise SystemExit(f"{url} does not have the expected SHA-256 {digest}; not used")
    path.write_bytes(payload)
    return path


def opencv_photos(folder: Path, archive: Path) -> None:
    """Copy OPENCV_PHOTOS out of the opencv-python source `archive` into `folder` as opencv_NAME."""
    found = set()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if member.isfile() and path.name in OPENCV_PHOTOS and path.parent.parts[-2:] == ("samples", "data"):
                (folder / f"opencv_{path.name}").write_bytes(tar.extractfile(member).read())
                found.add(path.name)
    if missing := sorted(set(OPENCV_PHOTOS) - found):
        raise SystemExit(f"{archive} lacks the sample photos {', '.join(missing)}")


def debian_package(name: str, scratch: Path) -> Path:
    """Debian's package `name` downloaded (`apt-get download`) and unpacked, not installed, under `scratch`."""
    try:
        subprocess.run(["apt-get", "download", name], cwd=scratch, check=True, capture_output=True)
        package = next(scratch.glob(f"{name}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(package), str(scratch / "root")], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError, StopIteration) as error:
        raise SystemExit(f"could not fetch the Debian package {name} ({error}); pass --train-dir with a folder of "
                         "photos instead") from None
    return scratch / "root"


def plasma_photos(folder: Path) -> None:
    """Copy PLASMA_PHOTOS out of Debian's plasma-workspace-wallpapers package into `folder` as NAME.jpg."""
    with tempfile.TemporaryDirectory() as scratch:
        root = debian_package(PLASMA_PACKAGE, Path(scratch))
        for name in PLASMA_PHOTOS:
            shutil.copy(root / "usr/share/wallpapers" / name / "contents/images/2560x1600.jpg", folder / f"{name}.jpg")


def read_qt_resources(bundle: bytes) -> dict[str, bytes]:
    """Path -> contents of every file in a compiled Qt resource bundle (.rcc, format 1-3, zlib or no compression).

    Layout: "qres", then the format and the offsets of the node tree, the contents and the names (big-endian).
    A node is its name's offset and flags, then a directory's child count and first child, or a file's locale
    and contents offset (format 2 on adds 8 bytes of modification time); contents are a size and the bytes, which
    zlib-compressed files precede with their own 4-byte length.
    """
    if bundle[:4] != b"qres":
        raise ValueError("not a compiled Qt resource bundle")
    version, tree, contents, names = struct.unpack_from(">IIII", bundle, 4)
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", bundle, names + offset)
        return bundle[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    pending = [(0, "")]
    while pending:
        index, path = pending.pop()
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", bundle, node)
        name = f"{path}/{name_at(name_offset)}" if index else ""
        if flags & 2:  # a directory
            count, first = struct.unpack_from(">II", bundle, node + 6)
            pending += [(child, name) for child in range(first, first + count)]
            continue
        (offset,) = struct.unpack_from(">I", bundle, node + 10)
        (size,) = struct.unpack_from(">I", bundle, contents + offset)
        payload = bundle[contents + offset + 4:contents + offset + 4 + size]
        if flags & 4:
            raise ValueError(f"{name} is zstd-compressed, which this reader does not decode")
        files[name.lstrip("/")] = zlib.decompress(payload[4:]) if flags & 1 else payload
    return files


def gcompris_photos(folder: Path) -> None:
    """Copy the photos of GCOMPRIS_ACTIVITIES out of Debian's gcompris-qt-data package into `folder` as
    gcompris_ACTIVITY_NAME.webp."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        root = debian_package(GCOMPRIS_PACKAGE, Path(scratch))
        for activity in GCOMPRIS_ACTIVITIES:
            bundle = (root / "usr/share/gcompris-qt/rcc" / f"{activity}.rcc").read_bytes()
            for path, payload in read_qt_resources(bundle).items():
                if (path.endswith(".webp") and GCOMPRIS_COPIES not in path
                        and min(Image.open(io.BytesIO(payload)).size) >= GCOMPRIS_MIN_SIDE):
                    (folder / f"gcompris_{activity}_{PurePosixPath(path).stem}.webp").write_bytes(payload)


def lomiri_photos(folder: Path) -> None:
    """Copy LOMIRI_PHOTOS out of Debian's lomiri-wallpapers packages into `folder` as lomiri_NAME.jpg, full size
    (the folder source shrinks photos as it reads them)."""
    for package, names in LOMIRI_PHOTOS.items():
        with tempfile.TemporaryDirectory() as scratch:
            root = debian_package(package, Path(scratch))
            for name in names:
                shutil.copy(root / LOMIRI_FOLDER / name, folder / f"lomiri_{name}")


def wide_photos(folder: Path, opencv_url: str = OPENCV_SDIST) -> Path:
    """The dev photos plus the 28 others of `--train-set wide` (module docstring), fetched into `folder` once."""
    import matplotlib.cbook

    hopper = folder / "mpl_grace_hopper.jpg"
    if hopper.is_file():
        return folder
    dev_photos(folder)
    plasma_photos(folder)
    opencv_photos(folder, fetch(opencv_url, OPENCV_SHA256, folder.parent / "downloads" / Path(opencv_url).name))
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), hopper)
    return folder


def all_photos(folder: Path) -> Path:
    """The photos of `--train-set wide` plus GCompris's and the Lomiri wallpapers' (module docstring), each group
    fetched into `folder` once (a folder made before the Lomiri photos were added gets them alone)."""
    if not any(folder.glob("gcompris_*.webp")):
        wide_photos(folder)
        gcompris_photos(folder)
    if not any(folder.glob("lomiri_*.jpg")):
        lomiri_photos(folder)
    return folder


TRAIN_SETS = {"dev": dev_photos, "wide": wide_photos, "all": all_photos}


def machine() -> str:
    """CPU model and core count (lscpu where available) and whether a GPU was visible."""
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    from pix2pix_tf.cli import quiet_tensorflow_start

    quiet_tensorflow_start()
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{model}, {os.cpu_count()} cores visible, {gpus} GPU(s), {platform.system()}"


def train(name: str, train_dir: Path, out: Path, budget: float, image_size: int, extra: list[str]) -> float:
    """Run train.py for one recipe; returns its wall-clock seconds. Output goes to OUT/NAME-train.log."""
    command = [sys.executable, str(REPO / "train.py"), "--dataset", "folder", "--data-dir", str(train_dir),
               "--image-size", str(image_size), "--time-budget", f"{budget:g}", "--fresh",
               "--run-dir", str(out / "runs" / name), "--export-dir", str(out / "models" / name),
               *extra, *RECIPES[name]]
    started = time.monotonic()
    with open(out / f"{name}-train.log", "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    if result.returncode:
        raise SystemExit(f"train.py failed for {name} (exit {result.returncode}); see {out / f'{name}-train.log'}")
    return time.monotonic() - started


def target_check(model: dict[str, float], grey: dict[str, float], target_colorfulness: float) -> dict[str, bool]:
    """The issue's target, criterion by criterion."""
    return {"ciede2000_better_than_grey": model["ciede2000"] < grey["ciede2000"],
            "psnr_better_than_grey": model["psnr"] > grey["psnr"],
            "ssim_at_least_grey": model["ssim"] >= grey["ssim"],
            "colourfulness_at_least_half_truth": model["colorfulness"] >= 0.5 * target_colorfulness}


def markdown(report: dict[str, Any]) -> str:
    """The table and the facts of the run, as Markdown."""
    header = "| | " + " | ".join(label for label, _, _ in METRIC_COLUMNS) + " |"
    lines = [header, "|---" * (len(METRIC_COLUMNS) + 1) + "|"]
    for label, key in ROWS:
        if key not in report["rows"]:
            continue
        row = report["rows"][key]
        lines.append(f"| {label} | " + " | ".join(f"{row[m]:.4f}" if m == "ssim" else f"{row[m]:.2f}"
                                                  for _, m, _ in METRIC_COLUMNS) + " |")
    lines.append(f"| truth | | | | | {report['target_colorfulness']:.2f} |")
    runs = report["training"]
    facts = [
        "",
        f"Budget: {report['budget_minutes']:g} min of training per model (run one after the other), "
        f"{report['image_size']} px; machine: {report['machine']}.",
        f"Trained on {report['train_photos']} photos in {report['train_dir']}; scored on "
        f"{report['n_test_images']} held-out photos ({', '.join(report['test_photos'])}), short side at the "
        "working size, every split.",
    ]
    for key, run in runs.items():
        facts.append(f"- {key}: {run['steps']} steps, colour space {run['color_space']}, chroma scale "
                     f"{run['chroma_scale']:g}, {run['wall_seconds']:.0f} s wall (train.py incl. start-up, "
                     "calibration, export)")
    facts.append("Higher is better for SSIM, PSNR, colourfulness; lower for CIEDE2000 and RMSD. The grey copy is "
                 "the model's grey input (CIE L* for lab models, BT.601 luma for rgb ones) returned unchanged.")
    checks = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in report["target_met"].items())
    facts.append(f"Target (model vs grey): {checks}.")
    return "\n".join(lines + facts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/quality.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training minutes per model (default 60)")
    parser.add_argument("--train-dir", type=Path, help="folder of training photos (default: --train-set's)")
    parser.add_argument("--train-set", choices=tuple(TRAIN_SETS), default="all",
                        help="photos fetched for training when no --train-dir is given (default all)")
    parser.add_argument("--image-size", type=int, default=128, help="working size (default 128 for CPU)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "quality", help="report folder")
    parser.add_argument("--toy", action="store_true", help="smoke test: seconds of training at 64 px")
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help=f"comma-separated recipes to train (default: {','.join(RECIPES)})")
    args, extra = parser.parse_known_args(argv)
    recipes = args.recipes.split(",")
    if "model" not in recipes or not set(recipes) <= set(RECIPES):
        parser.error(f"--recipes: 'model' plus any of {', '.join(RECIPES)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    budget = TOY_BUDGET if args.toy else args.budget
    image_size = TOY_IMAGE_SIZE if args.toy else args.image_size

    if args.toy:
        train_dir = args.train_dir or copy_photos(bundled_photos(SKIMAGE_TEST, "skimage"), out / "train_photos")
        test_dir = copy_photos(bundled_photos(SKLEARN_TEST, "sklearn"), out / "test_photos")
    else:
        train_dir = args.train_dir or TRAIN_SETS[args.train_set](out / f"{args.train_set}_photos")
        test_dir = copy_photos(bundled_photos(SKIMAGE_TEST, "skimage") | bundled_photos(SKLEARN_TEST, "sklearn"),
                               out / "test_photos")
    train_dir = Path(train_dir).resolve()

    from pix2pix_tf.evaluate import evaluate

    training: dict[str, dict[str, Any]] = {}
    evaluations: dict[str, dict[str, Any]] = {}
    for name in recipes:
        seconds = train(name, train_dir, out, budget, image_size, extra)
        evaluations[name] = evaluate(out / "models" / name, out / "eval" / name, "folder", str(test_dir), "all")
        meta = evaluations[name]["model_metadata"]
        training[name] = {"steps": meta["step"], "color_space": meta["color_space"],
                          "chroma_scale": meta["chroma_scale"], "wall_seconds": seconds}
        shutil.copy(out / "eval" / name / "results.png", out / f"quality_{name}.png")

    means = {name: evaluations[name]["means"]["model"] for name in recipes}
    rows = {"grey": evaluations["model"]["means"]["grey_baseline"], **means}
    target_colorfulness = evaluations["model"]["target_colorfulness"]
    report = {
        "budget_minutes": budget, "image_size": image_size, "machine": machine(), "toy": args.toy,
        "train_dir": str(train_dir), "train_photos": len(list(p for p in train_dir.rglob("*") if p.is_file())),
        "test_photos": sorted(p.stem for p in test_dir.iterdir()), "n_test_images": evaluations["model"]["n_images"],
        "extra_train_flags": extra, "rows": rows,
        "grey_baseline_of_rgb_recipe": (evaluations["rgb_recipe"]["means"]["grey_baseline"]
                                        if "rgb_recipe" in evaluations else None),
        "target_colorfulness": target_colorfulness, "training": training,
        "target_met": target_check(rows["model"], rows["grey"], target_colorfulness),
    }
    (out / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / "quality.md").write_text(text)
    print(text)
    print(f"wrote {out / 'quality.json'}, quality.md and " + ", ".join(f"quality_{name}.png" for name in recipes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
