"""regionspot: recognize any region of an image with an open vocabulary."""

__version__ = "0.1.0"
