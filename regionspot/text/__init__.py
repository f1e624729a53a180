"""regionspot.text."""
