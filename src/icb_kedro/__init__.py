"""icb_kedro: predict and explain immune checkpoint blockade response from bulk RNA-seq."""

__version__ = "0.1.0"
