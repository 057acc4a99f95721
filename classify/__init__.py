"""ResNet classifiers, training and evaluation metrics.

Knows nothing of GANs (see docs/architecture.md); methods in docs/comparison.md.
"""
