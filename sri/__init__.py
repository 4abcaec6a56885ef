"""sri: Segregate, Relate, Imagine — a reproduction suite for autoregressive slot VAEs."""

__version__ = "0.1.0"
