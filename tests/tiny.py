"""Tiny reverse-task data and configs shared by the training and trainer tests (seconds, not minutes)."""

from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.data import Seq2SeqData, build_data
from seq2seq.tasks import generate_splits


def tiny_data(n_valid: int) -> Seq2SeqData:
    return build_data(dict(generate_splits("reverse", 300, n_valid, 20, seed=0, min_len=3, max_len=8)), tokens="char")


def cfgs(data: Seq2SeqData, **kw) -> tuple[ModelConfig, TrainConfig]:
    """A 16-unit GRU trained 2 epochs in batches of 32; keyword arguments override either config's fields."""
    m = dict(cell="gru", hidden=16, embed=8)
    t = dict(epochs=2, batch_size=32, eval_every=5)
    for k, v in kw.items():
        (m if k in ModelConfig.__dataclass_fields__ else t)[k] = v
    return ModelConfig(len(data.src_vocab), len(data.tgt_vocab), **m), TrainConfig(**t)
