"""Output formats behind the one part-encoder interface (see domain.encoding)."""
