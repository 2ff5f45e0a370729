"""Train pix2pix: `python train.py --dataset opencountry` (see `--help`)."""

import sys

from pix2pix_tf.train import main

if __name__ == "__main__":
    sys.exit(main())
