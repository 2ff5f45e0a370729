"""MIT CVCL outdoor scene categories (TFDS builder `cvcl_scenes`)."""
