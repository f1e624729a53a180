"""regionspot.data."""
