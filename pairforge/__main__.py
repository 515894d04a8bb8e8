"""``python -m pairforge`` (also the entry point for ``torchrun -m pairforge train``)."""

from pairforge.cli import main

if __name__ == "__main__":  # worker processes started with "spawn" import this module again
    main()
