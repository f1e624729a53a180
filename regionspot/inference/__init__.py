"""regionspot.inference."""
