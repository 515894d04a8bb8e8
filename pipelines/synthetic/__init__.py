"""Dataset generators: they write whole datasets of files anyone can regenerate (``pairforge synth``).

Unlike the stages beside this package, which turn one photo into one pair, a
generator makes the photos and label maps themselves from a seed.
"""
