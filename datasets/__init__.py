"""TFDS dataset builders for the study's data, installed as `pix2pix_tf.tfds_builders` (see README.md)."""
