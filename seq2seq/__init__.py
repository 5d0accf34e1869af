"""seq2seq: a small, readable RNN encoder-decoder library behind Seq2Seq Explorer (no Streamlit in here)."""

from .config import ModelConfig, TrainConfig

__version__ = "0.12.0"
__all__ = ["ModelConfig", "TrainConfig", "__version__"]
