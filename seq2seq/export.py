"""The code behind a model: one standalone, readable Python file plus its weights.

    python -m seq2seq export runs/reverse --out reverse_model.py    # writes reverse_model.py + reverse_model.safetensors
    python reverse_model.py "hello"                                   # prints what `python -m seq2seq predict` prints
    python reverse_model.py --train pairs.tsv --steps 100             # a short training loop on your own pairs

The file imports only torch, safetensors and the standard library: never this project. It holds, top to bottom,
the configuration, the tokenizer and both vocabularies, the model (the same math as model.py: every cell, layers,
bidirectional encoder and bridge, attention none / dot / additive), a greedy decoder and a short training loop.
The weights file beside it is the checkpoint's model.safetensors under the same tensor names, so
`model.load_state_dict(load_file(...))` fills the exported module exactly.

Equality with `predict`: the exported decoder runs the same operations, in the same order, as the library's greedy
path for one input (an unpadded source: the encoder's single fused call; then `torch.lstm_cell` / `gru_cell` /
`rnn_tanh_cell` per step on `dec_rnn`'s weights, the same attention expression), so it prints the same output;
tests/test_export.py checks that on 100 inputs for every shipped model. Training batches are padded, so the exported
training loop packs them (the library's per-length split is a speed trick with the same values).

What it refuses (ExportError, a one-line message): a tokenization other than "char" or "word" (a later tokenizer needs
its own code here, so it must fail loudly rather than export a wrong tokenizer), and a checkpoint format other than the
one this template was written for (FORMAT_VERSION 2: the attention decoder feeds c_t, computed from s_{t-1}, into its
cell; see checkpoint.py), so a change of the model's math cannot silently produce a file that decodes differently.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from safetensors.torch import save as save_safetensors

from . import checkpoint as ckpt_io
from .config import TrainConfig
from .limits import get_limits

TEMPLATE_FORMAT_VERSION = 2  # the checkpoint format (model math) the template below implements


class ExportError(ValueError):
    """The model cannot be exported; the message says why (shown to the user as it is)."""


# The tokenizer code of each mode the exporter knows, written into the file as it is. A new mode needs a new entry
# here (and a test), so a model with an unknown one is refused rather than exported with a wrong tokenizer.
TOKENIZERS = {
    "char": (
        '''def tokenize(text: str) -> list[str]:
    """Character tokens: every character is one timestep x_t (spaces too)."""
    return list(text.lower() if LOWERCASE else text)


def detokenize(tokens: list[str]) -> str:
    return "".join(tokens)
''',
        "characters",
    ),
    "word": (
        '''_PIECE = re.compile(r"\\w+|[^\\w\\s]")  # a word (letters, digits, _) or one punctuation mark


def tokenize(text: str) -> list[str]:
    """Word tokens: words and punctuation marks; "##" marks one written right after the previous (no space)."""
    if LOWERCASE:
        text = text.lower()
    out, end = [], None
    for m in _PIECE.finditer(text):
        out.append("##" + m.group() if end is not None and m.start() == end else m.group())
        end = m.end()
    return out


def detokenize(tokens: list[str]) -> str:
    """The inverse of tokenize: "##" tokens are glued to the previous one, the others follow a space."""
    parts = []
    for i, tok in enumerate(tokens):
        if tok.startswith("##") and len(tok) > 2:
            parts.append(tok[2:])
        else:
            parts.append(tok if i == 0 else " " + tok)
    return "".join(parts)
''',
        "words and punctuation marks",
    ),
}


def _wrap_list(name: str, items: list[str], width: int = 116) -> str:
    """`NAME = [...]` as Python source, several reprs a line (valid for any string: repr, not JSON)."""
    lines, line = [], "    "
    for it in items:
        piece = repr(it) + ", "
        if len(line) + len(piece) > width and line.strip():
            lines.append(line.rstrip())
            line = "    "
        line += piece
    if line.strip():
        lines.append(line.rstrip())
    return f"{name} = [\n" + "\n".join(lines) + "\n]"


def _describe(ckpt) -> str:
    cfg = ckpt.model_cfg
    parts = [
        cfg.cell.upper(),
        f"E={cfg.embed}",
        f"H={cfg.hidden}",
        f"{cfg.layers} layer" + "s" * (cfg.layers > 1),
        "bidirectional encoder" if cfg.bidirectional else "unidirectional encoder",
        "no attention" if cfg.attention == "none" else f"{cfg.attention} attention",
    ]
    return ", ".join(parts)


def check_exportable(ckpt) -> None:
    """Raise ExportError when this exporter cannot write a faithful file for `ckpt`."""
    if ckpt.tokens not in TOKENIZERS:
        raise ExportError(
            f"cannot export a model with {ckpt.tokens!r} tokens: the exporter writes tokenizer code "
            f"for {' and '.join(repr(t) for t in TOKENIZERS)} tokens only"
        )
    if ckpt_io.FORMAT_VERSION != TEMPLATE_FORMAT_VERSION:
        raise ExportError(
            f"the exporter implements the model of checkpoint format {TEMPLATE_FORMAT_VERSION}, but "
            f"this version of the library writes format {ckpt_io.FORMAT_VERSION}: update "
            "seq2seq/export.py's template first"
        )


def source(ckpt, weights_name: str) -> str:
    """The standalone Python file for checkpoint `ckpt`, reading its weights from `weights_name` beside it."""
    check_exportable(ckpt)
    cfg, tcfg = ckpt.model_cfg, ckpt.train_cfg or TrainConfig()
    tok_code, unit = TOKENIZERS[ckpt.tokens]
    data = ckpt.metrics.get("data") if isinstance(ckpt.metrics, dict) else None
    max_len = data.get("max_len") if isinstance(data, dict) else None
    limit = get_limits().max_seq_len
    if not isinstance(max_len, int) or not 1 <= max_len <= limit:
        max_len = limit
    config = [
        ("CELL", cfg.cell, '"rnn" | "gru" | "lstm": the cell f (encoder) and g (decoder)'),
        ("EMBED", cfg.embed, "E: size of a token embedding"),
        ("HIDDEN", cfg.hidden, "H: units in a hidden state h_t / s_t"),
        ("LAYERS", cfg.layers, "stacked recurrent layers"),
        ("BIDIRECTIONAL", cfg.bidirectional, "the encoder reads the input both ways (the decoder runs forward)"),
        ("ATTENTION", cfg.attention, '"none" | "dot" | "additive"'),
        ("DROPOUT", cfg.dropout, "training only"),
        ("MAX_INPUT_TOKENS", limit, "longest input accepted"),
        ("MAX_LEN", max_len, "training pairs are cut to this many tokens"),
    ]
    lines = [f"{name} = {value!r}" for name, value, _ in config]
    width = max(map(len, lines)) + 2
    config_src = "\n".join(f"{line:<{width}}# {why}" for line, (_, _, why) in zip(lines, config))
    config_src += (
        f"\nTRAIN = dict(optimizer={tcfg.optimizer!r}, lr={tcfg.lr!r}, clip={tcfg.clip!r}, "
        f"batch_size={tcfg.batch_size!r})  # the model's own training settings"
    )
    subs = {
        "@CONFIG@": config_src,
        "@TITLE@": f"{ckpt.task or 'custom data'}: {_describe(ckpt)}",
        "@WEIGHTS@": weights_name,
        "@WEIGHTS_REPR@": repr(weights_name),
        "@TOKENS@": repr(ckpt.tokens),
        "@UNIT@": repr(unit),
        "@LOWERCASE@": repr(bool(getattr(ckpt.tokenizer, "lowercase", False))),
        "@TOKENIZER@": tok_code.rstrip("\n"),
        "@SRC_ITOS@": _wrap_list("SRC_ITOS", list(ckpt.src_vocab.itos)),
        "@TGT_ITOS@": _wrap_list("TGT_ITOS", list(ckpt.tgt_vocab.itos)),
    }
    return re.sub("|".join(re.escape(k) for k in subs), lambda m: subs[m.group(0)], TEMPLATE)


def weights_bytes(ckpt) -> bytes:
    """The model's weights as safetensors bytes, under the model's own state_dict names."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in ckpt.model.state_dict().items()}
    return save_safetensors(tensors)


def files(ckpt, stem: str = "seq2seq_model") -> dict[str, bytes]:
    """{stem.py: the code, stem.safetensors: the weights}."""
    return {
        f"{stem}.py": source(ckpt, f"{stem}.safetensors").encode("utf-8"),
        f"{stem}.safetensors": weights_bytes(ckpt),
    }


def zip_bytes(ckpt, stem: str = "seq2seq_model") -> bytes:
    """The two files in one .zip (the app's download)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files(ckpt, stem).items():
            z.writestr(name, data)
    return buf.getvalue()


def export(ckpt, out: str | Path) -> tuple[Path, Path]:
    """Write OUT.py and OUT.safetensors (beside it). Returns both paths. ExportError for a bad name or path."""
    out = Path(out)
    if out.suffix != ".py":
        raise ExportError(f"--out must name a .py file, got {str(out)!r}")
    if not out.parent.is_dir():
        raise ExportError(f"{str(out.parent)!r}: no such folder")
    written = files(ckpt, out.stem)
    weights = out.with_suffix(".safetensors")
    try:
        out.write_bytes(written[f"{out.stem}.py"])
        weights.write_bytes(written[f"{out.stem}.safetensors"])
    except OSError as e:
        raise ExportError(f"{out}: {e.strerror or e}") from None
    return out, weights


# ---------------------------------------------------------------------------------------------------------------------
# The file written out. @NAME@ markers are filled in by `source`; everything else is copied as it is.
TEMPLATE = r'''"""A sequence-to-sequence model, exported from Seq2Seq Explorer: @TITLE@.

    python this_file.py "input text"                    decode one input greedily (prints the output)
    python this_file.py --train pairs.tsv --steps 100   a short training loop on your own "source<TAB>target" lines
                                                        (then --save new.safetensors keeps the new weights)

Everything is in this one file (needs only PyTorch and safetensors); the weights are in @WEIGHTS@ beside it.
Notation, as in the app:  x_t source token at timestep t, h_t encoder state, c context vector, s_t decoder state,
y_t output token, a_t attention weights over the source timesteps, p_t the distribution over the next output token.

    encoder   h_t = f(x_t, h_{t-1})                    t = 1..T
    context   c   = q(h_1, ..., h_T)                   the final encoder state (through the bridge)
    decoder   s_t = g([embed(y_{t-1}); c_t], s_{t-1})  s_0 = the bridged final encoder state, y_0 = <sos>
              c_t = c without attention; with it c_t = sum_j a_tj k_j, a_t = softmax_j score(s_{t-1}, k_j)
    output    p_t = softmax(W_out o_t + b_out)         o_t = s_t, or tanh(W_o [s_t; c_t] + b_o) with attention
"""
import argparse
import random
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# ---- configuration (from the checkpoint) ------------------------------------------------------------------------
@CONFIG@
WEIGHTS = Path(__file__).with_name(@WEIGHTS_REPR@)

# ---- tokenizer and vocabulary ------------------------------------------------------------------------------------
TOKENS = @TOKENS@
LOWERCASE = @LOWERCASE@  # the text is lowercased before it is cut into tokens
UNIT = @UNIT@


@TOKENIZER@


PAD, SOS, EOS, UNK = "<pad>", "<sos>", "<eos>", "<unk>"  # ids 0..3 in both vocabularies
PAD_ID, SOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
@SRC_ITOS@
@TGT_ITOS@
SRC_STOI = {tok: i for i, tok in enumerate(SRC_ITOS)}
TGT_STOI = {tok: i for i, tok in enumerate(TGT_ITOS)}


def encode(tokens: list[str], stoi: dict) -> list[int]:
    """Token -> id; an unknown token -> <unk>. Text is never read as a control token: "<eos>" typed -> <unk>."""
    return [i if (i := stoi.get(t, UNK_ID)) > UNK_ID else UNK_ID for t in tokens]


def decode(ids: list[int]) -> list[str]:
    """Output ids -> tokens, up to the first <eos>, without <pad>/<sos>."""
    out = []
    for i in ids:
        if i == EOS_ID:
            break
        if i not in (PAD_ID, SOS_ID):
            out.append(TGT_ITOS[i] if 0 <= i < len(TGT_ITOS) else UNK)
    return out


class InputError(ValueError):
    """An input the model cannot read: the message says what to do."""


def check_input(text: str) -> tuple[list[str], list[str]]:
    """(tokens, warnings) for a typed input; InputError when it is empty or too long."""
    if not text.strip():
        raise InputError("The input is empty. Type a source sequence (or pick an example).")
    tokens = tokenize(text)
    if len(tokens) > MAX_INPUT_TOKENS:
        raise InputError(f"The input has {len(tokens)} {UNIT}; the limit is {MAX_INPUT_TOKENS}. Shorten it.")
    unknown = [t for t in tokens if SRC_STOI.get(t, UNK_ID) <= UNK_ID]
    warnings = []
    if len(unknown) == len(tokens):
        warnings.append("None of the input's tokens is in the model's vocabulary: the model sees only <unk> and "
                        "its output will be meaningless. Try an input like the training examples.")
    elif unknown:
        shown = ", ".join(repr(t) for t in dict.fromkeys(unknown))
        warnings.append(f"{len(unknown)} of {len(tokens)} tokens are not in the vocabulary and become <unk>: "
                        f"{shown[:200]}")
    return tokens, warnings


# ---- the model ---------------------------------------------------------------------------------------------------
class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        E, H, L = EMBED, HIDDEN, LAYERS
        RNN = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[CELL]
        kw = dict(batch_first=True, dropout=DROPOUT if L > 1 else 0.0)
        if CELL == "rnn":
            kw["nonlinearity"] = "tanh"
        # encoder f: embedding (the <pad> row stays zero) and a fused recurrent module, both directions at once
        self.src_embed = nn.Embedding(len(SRC_ITOS), E, padding_idx=PAD_ID)
        self.enc_rnn = RNN(E, H, L, bidirectional=BIDIRECTIONAL, **kw)
        # bridge q (bidirectional only): s_0[l] = tanh(W_b[l] [h_fwd_T[l]; h_bwd_1[l]] + b_b[l]), one per layer
        if BIDIRECTIONAL:
            self.bridge_h = nn.ModuleList(nn.Linear(2 * H, H) for _ in range(L))
            if CELL == "lstm":  # the same for the LSTM's memory cell
                self.bridge_c = nn.ModuleList(nn.Linear(2 * H, H) for _ in range(L))
        if ATTENTION != "none":
            if BIDIRECTIONAL:  # keys k_j = W_m [h_fwd_j; h_bwd_j] + b_m (2H -> H); unidirectional: k_j = h_j
                self.mem_proj = nn.Linear(2 * H, H)
            if ATTENTION == "additive":  # score(s, k_j) = v . tanh(W_s s + W_k k_j + b_k)
                self.att_Ws = nn.Linear(H, H, bias=False)
                self.att_Wk = nn.Linear(H, H)
                self.att_v = nn.Linear(H, 1, bias=False)
            self.att_out = nn.Linear(2 * H, H)  # o_t = tanh(W_o [s_t; c_t] + b_o)
        # decoder g: its input at step t is [embed(y_{t-1}); c_t]
        self.tgt_embed = nn.Embedding(len(TGT_ITOS), E, padding_idx=PAD_ID)
        self.dec_rnn = RNN(E + H, H, L, **kw)
        self.out = nn.Linear(H, len(TGT_ITOS))  # logits = W_out o_t + b_out
        self.drop = nn.Dropout(DROPOUT)

    # -- encoder: x_1..x_T -> h_1..h_T, the decoder's first state s_0 and the context c
    def encode(self, src, src_len):
        """src (B, S) padded ids, src_len (B,) -> dict of enc_out (B, S, D*H), mask (B, S), state0, context (B, H),
        keys (B, S, H) and keys_proj (additive attention)."""
        B, S = src.shape
        src_len = src_len.clamp(1, S)  # an empty source counts as one <pad>
        x = self.drop(self.src_embed(src))  # (B, S, E)
        if bool((src_len == S).all()):  # no padding: one fused call
            enc_out, h_n = self.enc_rnn(x)
        else:  # padded timesteps skipped, so each h_T is the state after that input's own last token
            packed = pack_padded_sequence(x, src_len, batch_first=True, enforce_sorted=False)
            out, h_n = self.enc_rnn(packed)
            enc_out, _ = pad_packed_sequence(out, batch_first=True, total_length=S)
        mask = torch.arange(S)[None, :] < src_len[:, None]
        if CELL == "lstm":
            h_n, m_n = h_n  # final hidden states and memory cells, (L*D, B, H)
            state0 = (self._bridge(h_n, "bridge_h"), self._bridge(m_n, "bridge_c"))
            context = state0[0][-1]
        else:
            state0 = self._bridge(h_n, "bridge_h")
            context = state0[-1]  # c = the top layer of s_0
        keys = keys_proj = None
        if ATTENTION != "none":
            keys = self.mem_proj(enc_out) if BIDIRECTIONAL else enc_out
            if ATTENTION == "additive":
                keys_proj = self.att_Wk(keys)  # W_k k_j + b_k, once per input
        return dict(enc_out=enc_out, mask=mask, state0=state0, context=context, keys=keys, keys_proj=keys_proj)

    def _bridge(self, final, which):
        """final (L*D, B, H), layer-major, forward then backward -> s_0 (L, B, H)."""
        if not BIDIRECTIONAL:
            return final
        f = final.view(LAYERS, 2, *final.shape[1:])
        bridge = getattr(self, which)
        return torch.stack([torch.tanh(bridge[l](torch.cat([f[l, 0], f[l, 1]], dim=-1))) for l in range(LAYERS)])

    # -- attention: where the decoder looks, from its previous state s_{t-1}
    def attend(self, q, enc):
        """q (B, H) = s_{t-1} -> a_t (B, S), c_t (B, H). Softmax over the real (unpadded) source positions."""
        k = enc["keys"]
        if ATTENTION == "dot":
            scores = (k * q.unsqueeze(1)).sum(-1) * HIDDEN ** -0.5  # s . k_j / sqrt(H)
        else:
            scores = self.att_v(torch.tanh(self.att_Ws(q).unsqueeze(1) + enc["keys_proj"])).squeeze(-1)
        a = torch.softmax(scores.masked_fill(~enc["mask"], float("-inf")), dim=-1)
        return a, (a.unsqueeze(-1) * k).sum(1)

    # -- decoder: one step s_t = g([embed(y_{t-1}); c_t], s_{t-1}) and p_t
    def decode_step(self, y_prev, state, enc):
        """y_prev (B,) ids, state: per-layer lists [s_l] (LSTM: ([s_l], [m_l])) -> logits (B, V), state, a_t."""
        e = self.drop(self.tgt_embed(y_prev))
        hs, ms = state if CELL == "lstm" else (state, None)
        a, c = (None, enc["context"]) if ATTENTION == "none" else self.attend(hs[-1], enc)
        inp, new_h, new_m = torch.cat([e, c], dim=-1), [], []
        for l in range(LAYERS):  # the fused module's own weights, one step with PyTorch's cell kernels
            w = (getattr(self.dec_rnn, f"weight_ih_l{l}"), getattr(self.dec_rnn, f"weight_hh_l{l}"),
                 getattr(self.dec_rnn, f"bias_ih_l{l}"), getattr(self.dec_rnn, f"bias_hh_l{l}"))
            if CELL == "lstm":
                h, m = torch.lstm_cell(inp, (hs[l], ms[l]), *w)
                new_m.append(m)
            elif CELL == "gru":
                h = torch.gru_cell(inp, hs[l], *w)
            else:
                h = torch.rnn_tanh_cell(inp, hs[l], *w)
            new_h.append(h)
            inp = F.dropout(h, DROPOUT, self.training) if l < LAYERS - 1 and DROPOUT > 0 else h
        s = new_h[-1]
        o = s if a is None else torch.tanh(self.att_out(torch.cat([s, c], dim=-1)))
        logits = self.out(self.drop(o))
        return logits, ((new_h, new_m) if CELL == "lstm" else new_h), a

    @staticmethod
    def split_state(state0):
        """s_0 (L, B, H) (or the LSTM's pair) -> the per-layer lists decode_step takes."""
        if CELL == "lstm":
            return list(state0[0].unbind(0)), list(state0[1].unbind(0))
        return list(state0.unbind(0))

    def forward(self, src, src_len, tgt_in):
        """Teacher forcing: logits (B, T, V) when the decoder is fed the true y_{t-1} = tgt_in[:, t]."""
        enc = self.encode(src, src_len)
        state, logits = self.split_state(enc["state0"]), []
        for t in range(tgt_in.shape[1]):
            step_logits, state, _ = self.decode_step(tgt_in[:, t], state, enc)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)


def load_model(weights=WEIGHTS) -> Seq2Seq:
    model = Seq2Seq()
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


# ---- greedy decoding: y_t = argmax p_t, fed back as the next input, until <eos> ------------------------------------
@torch.no_grad()
def greedy(model: Seq2Seq, src_ids: list[int], max_len: int) -> list[int]:
    """Output ids y_1..y_m (at most max_len, without <eos>) for one source."""
    model.eval()
    enc = model.encode(torch.tensor([src_ids]), torch.tensor([len(src_ids)]))
    state, y, out = model.split_state(enc["state0"]), torch.tensor([SOS_ID]), []
    for _ in range(max_len + 1):
        logits, state, _ = model.decode_step(y, state, enc)
        y = logits.argmax(-1)
        out.append(int(y))
        if out[-1] == EOS_ID:
            return out[:-1]
    return out[:max_len]


def translate(model: Seq2Seq, text: str) -> str:
    src_ids = encode(tokenize(text), SRC_STOI)
    if not src_ids:
        raise InputError("the input is empty: type at least one token")
    return detokenize(decode(greedy(model, src_ids, 2 * len(src_ids) + 10)))


# ---- a short training loop ---------------------------------------------------------------------------------------
def make_batch(pairs):
    """(source, target) texts -> padded src (B, S), src_len (B,), tgt_in = <sos> y_1..y_n, tgt_out = y_1..y_n <eos>."""
    src = [encode(tokenize(s), SRC_STOI)[:MAX_LEN] for s, _ in pairs]
    tgt = [encode(tokenize(t), TGT_STOI)[:MAX_LEN] for _, t in pairs]
    S, T = max(max(len(x) for x in src), 1), max(len(y) for y in tgt) + 1
    pad = lambda seq, n: seq + [PAD_ID] * (n - len(seq))  # noqa: E731
    return (torch.tensor([pad(x, S) for x in src]), torch.tensor([len(x) for x in src]),
            torch.tensor([pad([SOS_ID] + y, T) for y in tgt]), torch.tensor([pad(y + [EOS_ID], T) for y in tgt]))


def train(model: Seq2Seq, pairs, steps: int = 100, optimizer: str = TRAIN["optimizer"], lr: float = TRAIN["lr"],
          clip: float = TRAIN["clip"], batch_size: int = TRAIN["batch_size"], seed: int = 0, log=print) -> list[float]:
    """`steps` optimizer steps on random mini-batches of `pairs`; returns the training loss of each step."""
    rng = random.Random(seed)
    opt = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}[optimizer](
        model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        src, src_len, tgt_in, tgt_out = make_batch(rng.sample(pairs, min(batch_size, len(pairs))))
        logits = model(src, src_len, tgt_in)                   # every decoder step t predicts p(y_t | y_<t, x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD_ID)
        opt.zero_grad()
        loss.backward()                                        # backpropagation through time
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
        if log and (step % max(1, steps // 10) == 0 or step == 1):
            log(f"step {step}: loss {losses[-1]:.4f}")
    return losses


def read_pairs(path: str):
    pairs = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.strip():
            source, tab, target = line.partition("\t")
            if not tab or not source.strip() or not target.strip():
                raise InputError(f"{path}, line {n}: expected 'source<TAB>target'")
            pairs.append((source, target))
    if not pairs:
        raise InputError(f"{path}: no pairs")
    return pairs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", nargs="?", help="an input to decode")
    ap.add_argument("--weights", default=str(WEIGHTS), help="safetensors weights (default: beside this file)")
    ap.add_argument("--train", metavar="PAIRS.tsv", help="train on these source<TAB>target lines")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--save", metavar="FILE.safetensors", help="where --train writes the new weights")
    args = ap.parse_args(argv)
    try:
        if args.text is None and not args.train:
            raise InputError("give an input text to decode, or --train PAIRS.tsv")
        model = load_model(args.weights)
        if args.train:
            train(model, read_pairs(args.train), steps=args.steps, log=lambda s: print(s, file=sys.stderr))
            if args.save:
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.save)
            model.eval()
        if args.text is not None:
            _, warnings = check_input(args.text)
            for w in warnings:
                print(f"note: {w}", file=sys.stderr)
            print(translate(model, args.text))
    except (InputError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''
