import pytest

from ctqc.config import Config, load_config, preset_names
from ctqc.errors import UserError


def test_presets_exist_and_validate():
    assert {"default", "paper", "smoke"} <= set(preset_names())
    for name in ("default", "paper", "smoke"):
        assert isinstance(load_config(name), Config)


def test_paper_preset_has_the_papers_settings():
    cfg = load_config("paper")
    assert cfg.data.image_size == 32
    assert (cfg.split.val_fraction, cfg.split.test_fraction) == (0.17, 0.11)
    g = cfg.gan
    assert (g.architecture, g.mode, g.epochs, g.batch_size, g.lr, g.beta1, g.n_synthetic) == ("paper", "per_class", 2500, 16, 2e-4, 0.5, 200)
    c = cfg.classifier
    assert (c.arch, c.dropout, c.batch_size, c.optimizer, c.lr, c.patience) == ("resnet50", 0.4, 32, "rmsprop", 1e-3, 5)


def test_dotted_overrides_are_parsed_as_yaml_scalars():
    cfg = load_config("default", ["gan.epochs=10", "data.classes={0: a, 1: b, 2: c}", "split.scheme=kfold", "gan.lr=1e-3"])
    assert cfg.gan.epochs == 10 and cfg.gan.lr == pytest.approx(1e-3)
    assert cfg.data.classes == {0: "a", 1: "b", 2: "c"}
    assert cfg.split.scheme == "kfold"


@pytest.mark.parametrize(
    "override, culprit",
    [
        ("gan.epochz=3", "unknown key 'gan.epochz'"),
        ("gan.epochs=many", "key 'gan.epochs'"),
        ("data.image_size=33", "key 'data.image_size'"),
        ("split.scheme=bootstrap", "key 'split.scheme'"),
        ("data.classes={0: a}", "key 'data.classes'"),
        ("data.dicom.window=custom", "data.dicom.level"),
        ("classifier.dropout.x=1", "--set: key 'classifier.dropout'"),
        ("name.x=1", "'name' is a value"),
        ("noequals", "expected KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_key(override, culprit):
    with pytest.raises(UserError) as info:
        load_config("default", [override])
    assert culprit in str(info.value)


def test_unknown_key_in_yaml_names_file_and_lists_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ngan:\n  epocs: 3\n")
    with pytest.raises(UserError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "gan.epocs" in message and "epochs" in message


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="unknown config 'nosuchpreset'"):
        load_config("nosuchpreset")


def test_resolved_config_round_trips_and_hash_is_stable(tmp_path):
    cfg = load_config("paper", ["seed=7"])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path)
    assert again == cfg and again.hash() == cfg.hash()
    assert load_config("paper", ["seed=8"]).hash() != cfg.hash()


def test_dicom_window_presets_and_custom():
    assert load_config("default").data.dicom.level_width() == (40.0, 80.0)
    assert load_config("default", ["data.dicom.window=bone"]).data.dicom.level_width() == (600.0, 2800.0)
    cfg = load_config("default", ["data.dicom.window=custom", "data.dicom.level=50", "data.dicom.width=100"])
    assert cfg.data.dicom.level_width() == (50.0, 100.0)
