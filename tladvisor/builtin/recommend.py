"""Built-in plugin: recommend (filled in by its owner)."""
