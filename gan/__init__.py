"""DCGAN networks, losses, augmentations, trainer and sampling.

Knows nothing of QC or classifiers (see DESIGN.md). Filled in by the GAN issue.
"""
