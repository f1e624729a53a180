"""Small helpers with one home each: atomic file writes (``io``), the weights fingerprint (``fingerprint``),
and a torch tensor told from an array without importing torch (``tensors``)."""
