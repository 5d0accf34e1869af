"""ModelConfig / TrainConfig: defaults, validation, dict round trip."""

import pytest

from seq2seq.config import ModelConfig, TrainConfig


def test_defaults_validate_and_round_trip():
    tc = TrainConfig()
    assert TrainConfig.from_dict(tc.to_dict()) == tc.validate()
    mc = ModelConfig(20, 30)
    assert ModelConfig.from_dict(mc.to_dict()) == mc.validate()


@pytest.mark.parametrize("lr", [1e-6, 3e-3, 10.0, 1000.0])
def test_learning_rate_range_allows_divergence_demos(lr):
    assert TrainConfig(optimizer="sgd", lr=lr, clip=0.0).validate().lr == lr


@pytest.mark.parametrize("lr", [0.0, -1.0, 1000.5, float("inf")])
def test_learning_rate_out_of_range(lr):
    with pytest.raises(ValueError, match="learning rate"):
        TrainConfig(lr=lr).validate()


def test_from_dict_rejects_unknown_and_mistyped_keys():
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"lr": 0.1, "momentum": 0.9})
    with pytest.raises(ValueError, match="expected a number"):
        TrainConfig.from_dict({"lr": "fast"})


def test_lr_schedule_round_trips_and_validates():
    tc = TrainConfig(lr_schedule="constant", lr_half_life=250)
    assert TrainConfig.from_dict(tc.to_dict()) == tc
    assert TrainConfig.from_dict({"lr": 0.01}).lr_schedule == TrainConfig().lr_schedule  # old configs: default
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine").validate()
    with pytest.raises(ValueError, match="lr_half_life"):
        TrainConfig(lr_half_life=0).validate()
    with pytest.raises(ValueError, match="whole number"):
        TrainConfig.from_dict({"lr_half_life": 2.5})


def test_precision_round_trips_and_validates():
    assert TrainConfig().precision == "auto"
    assert TrainConfig.from_dict({"lr": 0.01}).precision == "auto"  # configs saved before the field: the default
    assert TrainConfig.from_dict(TrainConfig(precision="bf16").to_dict()).precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16").validate()


@pytest.mark.parametrize(
    "key,value",
    [
        ("src_vocab_size", float("inf")),
        ("src_vocab_size", 10**5000),
        ("hidden", "128"),
        ("embed", 1e400),
        ("layers", 7),
        ("dropout", float("nan")),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_model_config_from_dict_refuses_hostile_numbers_in_one_line(key, value):
    d = ModelConfig(10, 10).to_dict() | {key: value}
    with pytest.raises(ValueError) as e:  # never OverflowError / TypeError
        ModelConfig.from_dict(d)
    assert type(e.value) is ValueError and "\n" not in str(e.value) and key in str(e.value)


@pytest.mark.parametrize(
    "key,value",
    [
        ("clip", float("nan")),
        ("seed", 2**70),
        ("epochs", float("inf")),
        ("threads", 0),
        ("batch_size", 10**5000),
        ("lr", "fast"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_train_config_from_dict_refuses_hostile_numbers_in_one_line(key, value):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_dict({key: value})
    assert type(e.value) is ValueError and "\n" not in str(e.value)
