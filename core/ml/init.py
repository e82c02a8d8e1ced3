"""Start a transformer student from its teacher's layers (layer dropping, as DistilBERT does).

When the student has the teacher's width (hidden size, heads, feed-forward size) and shares its tokenizer, it
takes the teacher's embeddings, every k-th encoder layer (k = teacher layers // student layers), the pooler and,
when the labels are the same, the classifier head: it starts from what the teacher knows instead of random
weights. Otherwise it is initialised from its config, and ``plan`` says why, so the run records it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.domain.errors import InvalidInput
from core.ml import build

HALF_TEACHER = "half-teacher"  # a size: the teacher's width with half its layers (DistilBERT's recipe)


@dataclass(frozen=True)
class InitPlan:
    from_teacher: bool
    layers: list[int]  # the teacher layers copied, in the student's order
    sentence: str


def teacher_config(teacher_dir: Path | str | None) -> dict | None:
    """The teacher's BERT config when ``teacher_dir`` holds a transformers BERT classifier, else None."""
    path = Path(teacher_dir) / "config.json" if teacher_dir else None
    if path is None or not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    return config if config.get("model_type") == "bert" else None


def half_teacher(teacher: dict | None) -> build.Size:
    if teacher is None:
        raise InvalidInput(f"size {HALF_TEACHER!r} takes the teacher's width and half its layers, so it needs a "
                           "local transformers teacher: choose tiny or small.", field="size")
    return build.Size(HALF_TEACHER, max(1, teacher["num_hidden_layers"] // 2), teacher["hidden_size"],
                      teacher["num_attention_heads"], teacher["intermediate_size"])


def plan(size: build.Size, teacher: dict | None, *, shares_tokenizer: bool) -> InitPlan:
    """Which teacher layers the student copies, or why it starts from its config."""
    if teacher is None:
        return InitPlan(False, [], "initialised from the config: the teacher is not a local transformers model")
    if not shares_tokenizer:
        return InitPlan(False, [], "initialised from the config: the student does not use the teacher's tokenizer")
    mine = (size.hidden, size.heads, size.intermediate)
    theirs = (teacher["hidden_size"], teacher["num_attention_heads"], teacher["intermediate_size"])
    if mine != theirs:
        return InitPlan(False, [], f"initialised from the config: the student is {size.hidden} wide and the "
                                   f"teacher {theirs[0]} (copying layers needs the teacher's width; size "
                                   f"{HALF_TEACHER!r} has it)")
    n_teacher = teacher["num_hidden_layers"]
    if size.layers > n_teacher:
        return InitPlan(False, [], f"initialised from the config: the student has more layers ({size.layers}) "
                                   f"than the teacher ({n_teacher})")
    k = n_teacher // size.layers
    layers = [i * k for i in range(size.layers)]
    return InitPlan(True, layers, f"initialised from the teacher: embeddings and layers "
                                  f"{', '.join(str(i + 1) for i in layers)} of {n_teacher}")


def copy_from_teacher(student_model, teacher_model, init: InitPlan) -> None:
    """Copy the planned weights from ``teacher_model`` into ``student_model`` in place."""
    import torch

    s, t = student_model.bert, teacher_model.bert
    with torch.no_grad():
        for name in ("word_embeddings", "token_type_embeddings"):
            getattr(s.embeddings, name).weight.copy_(getattr(t.embeddings, name).weight)
        rows = min(s.embeddings.position_embeddings.weight.shape[0], t.embeddings.position_embeddings.weight.shape[0])
        s.embeddings.position_embeddings.weight[:rows].copy_(t.embeddings.position_embeddings.weight[:rows])
        s.embeddings.LayerNorm.load_state_dict(t.embeddings.LayerNorm.state_dict())
        for j, i in enumerate(init.layers):
            s.encoder.layer[j].load_state_dict(t.encoder.layer[i].state_dict())
        if s.pooler is not None and t.pooler is not None:
            s.pooler.load_state_dict(t.pooler.state_dict())
        if student_model.config.id2label == teacher_model.config.id2label:
            student_model.classifier.load_state_dict(teacher_model.classifier.state_dict())
