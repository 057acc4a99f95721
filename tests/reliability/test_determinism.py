"""Determinism: the same config and seed on the CPU give the same numbers, file for file.

Two uninterrupted ``ctqc run`` of :data:`~tests.reliability.conftest.PIPELINE`
(train → generate → filter → qc → compare → report) in separate folders must
give identical bytes of ``filter/kept.csv``, ``filter/rejected.csv``,
``samples/index.csv``, ``qc/scores.csv`` and ``qc/embeddings.csv``;
identical ``qc/metrics.json`` and ``filter/filter.json`` once the wall-clock
``fit_seconds`` of the domain encoder is dropped; identical
``compare/results.csv`` once its ``seconds`` and ``train_images_per_second``
columns are dropped; the same GAN weights and the same synthetic pixels (the
images' PNG text names the run folder, which differs by its time stamp).
"""

from __future__ import annotations

import pytest

from tests.reliability.conftest import PIPELINE, assert_same_gan, ctqc, outputs_without_timings


@pytest.mark.slow
def test_two_runs_with_the_same_seed_are_identical(tmp_path, reference_pipeline):
    result = ctqc(*PIPELINE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = (tmp_path / "runs" / "latest").resolve()
    assert run != reference_pipeline
    ours, reference = outputs_without_timings(run), outputs_without_timings(reference_pipeline)
    for rel in reference:
        assert ours[rel] == reference[rel], rel
    assert_same_gan(reference_pipeline, run)
