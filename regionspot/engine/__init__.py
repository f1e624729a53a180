"""regionspot.engine."""
