"""regionspot.cache."""
