"""ResNet classifiers, training and evaluation metrics.

Knows nothing of GANs (see DESIGN.md). Filled in by the classifier issue.
"""
