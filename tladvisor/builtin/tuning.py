"""Built-in plugin: tuning (filled in by its owner)."""
