"""``python -m pairforge`` (also the entry point for ``torchrun -m pairforge train``)."""

from pairforge.cli import main

main()
