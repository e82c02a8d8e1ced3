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


# The teacher used by the demo, and the two default student sizes: the smallest
# plausible and one step larger (measured in ../shared/PLATFORM.md).
SIZES = {
    "teacher": Size("teacher", 4, 256, 4, 1024),
    "tiny": Size("tiny", 1, 64, 2, 256),
    "small": Size("small", 1, 128, 2, 512),
}


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 4000, max_length: int = 128):
    """A WordPiece tokenizer trained on ``texts``; returns a PreTrainedTokenizerFast.

    Training is not reproducible across processes: save the tokenizer with the
    model and never retrain it to reproduce token ids.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tok.train_from_iterator(texts, trainer=trainer)
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
