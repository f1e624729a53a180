"""Small helpers with one home each: atomic file writes (``io``) and the weights fingerprint (``fingerprint``)."""
