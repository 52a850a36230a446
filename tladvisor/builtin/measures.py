"""Built-in plugin: measures (filled in by its owner)."""
