"""regionspot.evaluation."""
