"""Scores people expect of a translation: corpus BLEU and chrF, computed by sacrebleu (the field's reference
implementation), with every reference of a source.

    corpus_scores(hyps, refs)   hyps[i]: the model's output for source i; refs[i]: all correct targets of source i

BLEU (Papineni et al. 2002): the geometric mean of the n-gram precisions (n = 1..4) of all outputs against their
references, times a brevity penalty for outputs shorter than the references; sacrebleu's standard settings (13a
tokenization, exponential smoothing), 0..100. chrF (Popovic 2015): an F-score of character n-grams (n = 1..6, beta 2),
0..100, kinder to short sentences and to morphology than BLEU. With several references, an n-gram counts if any
reference has it (BLEU) / the best-matching reference is used (chrF), as sacrebleu does.
"""

from __future__ import annotations

from collections.abc import Sequence


def reference_streams(refs: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: stream k holds the k-th reference of every source, None where a source has fewer."""
    k = max((len(r) for r in refs), default=0)
    return [[r[j] if j < len(r) else None for r in refs] for j in range(k)]


def corpus_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> dict[str, float]:
    """{"bleu": corpus BLEU, "chrf": corpus chrF}, both 0..100, of outputs against all references of each source."""
    import sacrebleu

    if len(hyps) != len(refs):
        raise ValueError(f"need one list of references per output, got {len(hyps)} outputs, {len(refs)} lists")
    if not hyps or any(not r for r in refs):
        raise ValueError("every output needs at least one reference")
    streams = reference_streams(refs)
    return {
        "bleu": float(sacrebleu.corpus_bleu(list(hyps), streams).score),
        "chrf": float(sacrebleu.corpus_chrf(list(hyps), streams).score),
    }
