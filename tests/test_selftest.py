"""The QC self-test's criteria on the built-in phantom data (issue: planted-defect self-test)."""

import json

import pytest


@pytest.mark.slow
def test_selftest_criteria_on_phantom_data(tmp_path, run_cli):
    result = run_cli("selftest", "--out", tmp_path / "selftest.json", "--permutations", "20")
    assert result.code == 0, result.err
    r = json.loads((tmp_path / "selftest.json").read_text())
    assert r["n_images"] == 178 and "test never" in r["data"]["images_used"]
    # (a) null: indistinguishable halves
    null = r["null"]
    assert abs(sum(null["auc"]) / len(null["auc"]) - 0.5) <= 0.1
    assert max(null["discarded_fraction"]) <= 0.15
    assert all(0 < p <= 1 for p in null["p_values"]) and max(null["p_values"]) > 0.3
    assert null["pass"]
    # (b) planted artifacts: detection rises with strength, ≥ 0.9 at medium strength
    auroc = r["planted"]["auroc"]
    assert r["planted"]["rising_with_strength"]
    for name, levels in auroc.items():
        assert levels["medium"] >= 0.9 and levels["high"] >= 0.93, name
    assert r["planted"]["medium_at_least_0.9"] and r["planted"]["pass"]
    units = r["planted"]["intensity_shift_units"]  # shifts measured in the data's brightness spread
    assert 0.02 < units["brightness_spread"] < 0.2 and units["strengths"]["medium"] == 2.5
    # (c) copies: ≥ 95 % flagged, ≤ 5 % of genuine held-out images
    assert min(r["copies"]["flagged"].values()) >= 0.95 and r["copies"]["genuine_flagged"] <= 0.05
    assert "(a) null" in result.out and "(c) copies flagged" in result.out
