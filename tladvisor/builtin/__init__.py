"""Built-in plugins. Each module here is registered like any third-party plugin (see DEFAULT_PLUGINS)."""
