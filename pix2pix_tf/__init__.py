"""pix2pix-tf: pix2pix (Isola et al. 2017) in TensorFlow / Keras 3, built for colorizing photos."""

__version__ = "0.1.0"
