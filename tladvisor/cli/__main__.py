"""``python -m tladvisor.cli``: the same as the ``tladvisor`` command."""

from tladvisor.cli import run

run()
