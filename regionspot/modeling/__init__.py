"""regionspot.modeling."""
