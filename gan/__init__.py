"""DCGAN networks, losses, augmentations, trainer and sampling.

Knows nothing of QC or classifiers (see docs/architecture.md); methods in docs/gan.md.
"""
