"""Building transformer classifiers and tokenizers offline, from configs.

No hub access: tokenizers are trained here with ``tokenizers`` (or loaded from a
local model directory) and models are built from a ``BertConfig``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class Size:
    name: str
    layers: int
    hidden: int
    heads: int
    intermediate: int


# The teacher used by the demo (two layers: the demo's teacher trains in a minute of CPU, core/demo/teacher.py),
# and the two default student sizes: the smallest plausible and one step larger (measured in
# ../shared/PLATFORM.md).
SIZES = {
    "teacher": Size("teacher", 2, 128, 2, 512),
    # The 4x256 teacher the benchmarks distil from (the demo's teacher before issue 19), so their figures stay
    # comparable with the issues' measurements.
    "teacher-4x256": Size("teacher-4x256", 4, 256, 4, 1024),
    "tiny": Size("tiny", 1, 64, 2, 256),
    "small": Size("small", 1, 128, 2, 512),
}


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 4000, max_length: int = 128):
    """A WordPiece tokenizer trained on ``texts``; returns a PreTrainedTokenizerFast.

    Training is not reproducible across processes (the trainer breaks ties in hash-map order): save the
    tokenizer with the model and never retrain it to reproduce token ids; ``fixed_tokenizer`` is reproducible.
    """
    from tokenizers import Tokenizer, models, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    _bert_pieces(tok)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrapped(tok, max_length)


def fixed_tokenizer(texts: Iterable[str], *, vocab_size: int = 4000, max_length: int = 128):
    """A WordPiece tokenizer whose vocabulary is a function of ``texts`` alone, so every process and machine
    builds the same one: every character seen (alone and as a ``##`` continuation) and then the most frequent
    whole words, ties broken by the word, up to ``vocab_size``. A word not in it is spelled in characters."""
    from collections import Counter

    from tokenizers import Tokenizer, models

    probe = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    _bert_pieces(probe)
    normalize, split = probe.normalizer.normalize_str, probe.pre_tokenizer.pre_tokenize_str  # type: ignore[union-attr]
    words = Counter(w for text in texts for w, _ in split(normalize(text)))
    chars = sorted({c for w in words for c in w})
    vocab = [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    known = set(vocab)
    vocab += [w for w, _ in sorted(words.items(), key=lambda wc: (-wc[1], wc[0])) if w not in known]
    tok = Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(vocab[:vocab_size])},
                                     unk_token="[UNK]", max_input_chars_per_word=100))
    _bert_pieces(tok)
    return _wrapped(tok, max_length)


def _bert_pieces(tok) -> None:
    """BERT's lower-casing normaliser, pre-tokenizer and decoder, set on ``tok``."""
    from tokenizers import decoders, normalizers, pre_tokenizers

    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()


def _wrapped(tok, max_length: int):
    """``tok`` with BERT's [CLS] ... [SEP] template, as the PreTrainedTokenizerFast the students use."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_length,
    )


def load_tokenizer(model_dir: Path | str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


def build_classifier(size: Size | str, *, labels: list[str], vocab_size: int, max_length: int = 128):
    """A freshly initialised BERT sequence classifier of the given size."""
    from transformers import BertConfig, BertForSequenceClassification

    size = SIZES[size] if isinstance(size, str) else size
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, intermediate_size=size.intermediate,
        max_position_embeddings=max(max_length, 32), num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )
    return BertForSequenceClassification(config)


def load_classifier(model_dir: Path | str):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # transformers draws its own "Loading weights" bar on stderr; Stillroom shows progress its own way.
    hf_logging.disable_progress_bar()
    return AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True)
