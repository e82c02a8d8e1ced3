"""A small pretrained encoder built and saved here (issue 20's student starts): never downloaded."""

from __future__ import annotations

from pathlib import Path

from core.ml import build

TEXTS = ["my invoice was charged twice", "the app crashes on start", "I cannot log in to my account",
         "refund the payment please", "error when I open the app", "reset my password"]


def save_tiny_encoder(path: Path, *, texts: list[str] | None = None, labels: list[str] | None = None,
                      model_type: str = "bert") -> Path:
    """A 2-layer, 32-wide encoder and its tokenizer saved with save_pretrained: a BertForMaskedLM (or DistilBERT
    with ``model_type="distilbert"``), or, given ``labels``, a classifier of another task with its own head."""
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForMaskedLM,
    )

    torch.manual_seed(0)
    tokenizer = build.fixed_tokenizer(texts or TEXTS, max_length=32)
    if model_type == "distilbert":
        model = DistilBertForMaskedLM(DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2,
                                                       hidden_dim=64, max_position_embeddings=64))
    else:
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64)
        if labels:
            config.num_labels = len(labels)
            config.id2label = dict(enumerate(labels))
            config.label2id = {label: i for i, label in enumerate(labels)}
        model = BertForSequenceClassification(config) if labels else BertForMaskedLM(config)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return Path(path)


def searched(session, engine, *, actor, project, teacher, budget_s: float = 600):
    """A training search of ``teacher``'s outputs, run here to its end (done, or the test fails with the error)."""
    from core.store import jobs
    from core.training import search

    job = search.start_search(session, actor=actor, project=project, teacher_run_id=teacher.id, budget_s=budget_s)
    done = jobs.run(job.id, engine=engine)
    assert done.status == "done", done.error
    return done
