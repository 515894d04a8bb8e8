"""Moved to :mod:`pairforge.pipelines.synthetic.facades` (a dataset generator, not a stage).

Kept only for ``pairforge/commands/demo.py``'s import; remove once that imports the new place.
"""

from pairforge.pipelines.synthetic.facades import FacadesConfig, write_facades

__all__ = ["FacadesConfig", "write_facades"]
