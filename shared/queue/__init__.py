"""Queue messages and the one runner that settles their jobs (and the one poison path)."""
