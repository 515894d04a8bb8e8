"""Click commands, one module per area; ``pairforge.cli`` registers each module's COMMANDS."""
