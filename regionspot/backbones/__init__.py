"""regionspot.backbones."""
