"""tladvisor: a plugin-based AutoML advisor for transfer learning.

A plugin module needs only ``from tladvisor import hookimpl``.
"""

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "tladvisor"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for plugin hook implementations: ``@hookimpl def register_backbones(register): ...``."""

__all__ = ["__version__", "hookimpl", "PROJECT_NAME"]
