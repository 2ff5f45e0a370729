"""Berkeley pix2pix paired sets (TFDS builder `pix2pix_paired`)."""
