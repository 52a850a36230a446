"""Built-in plugin: report (filled in by its owner)."""
