"""`python evaluate.py --model saved_models/<dataset> ...`: see `pix2pix_tf.evaluate`."""

from pix2pix_tf.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
