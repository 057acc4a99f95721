"""QC layer: features, distribution metrics, C2ST, memorisation, filtering."""
