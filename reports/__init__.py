"""Figures and the self-contained HTML report, rendered from run-directory files only."""
