"""Built-in plugin: datasets (filled in by its owner)."""
