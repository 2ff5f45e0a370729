"""How fast the training pipeline feeds examples: `train_dataset` on the sample set, one line of output.

    python bench/data_speed.py [--image-size 256] [--batch-size 1] [--batches 200]
"""

from __future__ import annotations

import argparse
import os
import time

from pix2pix_tf.cli import quiet_tensorflow_start

quiet_tensorflow_start()  # before TensorFlow's import

from pix2pix_tf import data  # noqa: E402
from pix2pix_tf.config import Config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--batches", type=int, default=200, help="timed batches (epochs repeat as needed)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches first")
    args = parser.parse_args()
    config = Config(dataset="sample", image_size=args.image_size, batch_size=args.batch_size, vflip=True,
                    zoom_crop=0.3)

    start = time.perf_counter()
    data.split_data(config, "train")  # one-time decode into memory
    load_seconds = time.perf_counter() - start
    steps = data.steps_per_epoch(config)
    epochs = -(-(args.warmup + args.batches) // steps)
    dataset = data.train_dataset(config, 0)
    for epoch in range(1, epochs):
        dataset = dataset.concatenate(data.train_dataset(config, epoch))
    iterator = iter(dataset)
    for _ in range(args.warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(iterator)
    seconds = time.perf_counter() - start
    print(f"train_dataset(sample, {args.image_size} px, batch {args.batch_size}, jitter+mirror+vflip+zoom): "
          f"{args.batches * args.batch_size / seconds:.0f} img/s over {args.batches} batches "
          f"(one-time load {load_seconds:.1f} s, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
