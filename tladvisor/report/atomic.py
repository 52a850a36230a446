"""Kept for imports written before :mod:`tladvisor.atomic` (the one module for atomic writes and file locks)."""

from tladvisor.atomic import NEW_FILE_MODE, write_bytes_atomic, write_text_atomic

__all__ = ["NEW_FILE_MODE", "write_bytes_atomic", "write_text_atomic"]
