"""Core: what every part may use. Errors, atomic file writes, seeded hashing, reading paths and URLs."""
