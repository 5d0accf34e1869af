"""seq2seq: a small, readable RNN encoder-decoder library behind Seq2Seq Explorer (no Streamlit in here)."""
from .config import ModelConfig, TrainConfig

__all__ = ["ModelConfig", "TrainConfig"]
