"""``python -m tvmc_transfer``: the same as the ``tvmc`` command."""

from .main import main

main()
