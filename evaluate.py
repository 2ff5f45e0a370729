"""`python evaluate.py --model saved_models/<dataset> ...`: see `pix2pix_tf.evaluate`."""

from pix2pix_tf.evaluate import inference_process_main

if __name__ == "__main__":
    raise SystemExit(inference_process_main())
