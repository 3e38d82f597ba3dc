"""Output formats behind the one part-encoder interface (see domain.formats.encoding)."""
