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
