"""The user's pipeline: Extended JSON in, validation against the allow-lists, and the
plan that pages it (keysets, chunk strategy)."""
