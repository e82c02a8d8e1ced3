"""Start a transformer student from its teacher's layers (layer dropping, as DistilBERT does).

When the student has the teacher's width (hidden size, heads, feed-forward size) and shares its tokenizer, it
takes the teacher's embeddings, every k-th encoder layer (k = teacher layers // student layers), the pooler and,
when the labels are the same, the classifier head: it starts from what the teacher knows instead of random
weights. Otherwise it is initialised from its config, and ``plan`` says why, so the run records it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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


# --------------------------------------------------------------------------- a pretrained encoder (issue 20)

STUDENT_INIT = "student_init"
# The files that make a checkpoint what it is: weights, config and tokenizer. Their SHA-256 names the start.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass(frozen=True)
class Encoder:
    """A checked encoder directory: where it is, what it is and the SHA-256 that names its files."""

    path: Path
    model_type: str
    layers: int | None
    hidden: int | None
    sha256: str
    files: list[str]

    def sentence(self) -> str:
        plural = "s" if self.layers != 1 else ""
        shape = f", {self.layers} layer{plural} × {self.hidden}" if self.layers and self.hidden else ""
        return f"pretrained encoder {self.path} ({self.model_type}{shape}, sha256 {self.sha256[:12]}…)"


def check_encoder(value: str) -> Encoder:
    """The encoder directory ``value`` names (a local directory, or a hub id where the machine is online), checked:
    a config of an encoder model type, weights and a tokenizer; else InvalidInput with the fix, changing nothing."""
    path = _local(value)
    if not (path / "config.json").is_file():
        raise _refuse(value, "has no config.json: it is not a transformers model directory (save the model there "
                             "with save_pretrained)")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    model_type = str(config.get("model_type") or "")
    if not _is_encoder(model_type, config):
        raise _refuse(value, f"holds a {model_type or 'model of no model_type'}, not an encoder (a BERT, DistilBERT, "
                             "MiniLM or another masked-language model): give an encoder's directory")
    if not any((path / f).is_file() for f in WEIGHT_FILES) and not list(path.glob("model-*.safetensors")):
        raise _refuse(value, f"has no weights ({' or '.join(WEIGHT_FILES)}): save the model there with "
                             "save_pretrained")
    if not any((path / f).is_file() for f in TOKENIZER_FILES[:3]):
        raise _refuse(value, "has no tokenizer (tokenizer.json, tokenizer_config.json or vocab.txt): save the "
                             "encoder's tokenizer beside it with tokenizer.save_pretrained")
    sha, files = fingerprint(path)
    return Encoder(path=path, model_type=model_type, sha256=sha, files=files,
                   layers=config.get("num_hidden_layers", config.get("n_layers")),
                   hidden=config.get("hidden_size", config.get("dim")))


def fingerprint(path: Path) -> tuple[str, list[str]]:
    """SHA-256 over the directory's weight, config and tokenizer files (each name and its bytes' SHA-256, in name
    order): the same files give the same hash wherever they lie."""
    names = sorted({p.name for p in path.iterdir() if p.is_file() and _counts(p.name)})
    outer = hashlib.sha256()
    for name in names:
        inner = hashlib.sha256()
        with (path / name).open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                inner.update(block)
        outer.update(f"{name}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest(), names


def _counts(name: str) -> bool:
    return (name == "config.json" or name in WEIGHT_FILES or name in TOKENIZER_FILES
            or (name.startswith("model") and name.endswith((".safetensors", ".safetensors.index.json"))))


def _is_encoder(model_type: str, config: dict) -> bool:
    """An encoder: a model type transformers has a masked-language head for, and no decoder."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return (model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not config.get("is_encoder_decoder")
            and not config.get("is_decoder"))


def _local(value: str) -> Path:
    """The directory ``value`` names: itself when it exists, else a hub id downloaded where the machine is online."""
    path = Path(value).expanduser()
    if path.is_dir():
        return path.resolve()
    offline = [v for v in _OFFLINE if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]
    hub_id = not path.exists() and _HUB_ID.fullmatch(value) is not None
    if not hub_id or offline:
        why = f" and this machine is offline ({offline[0]}), so it is not fetched as a hub id" if hub_id else ""
        raise _refuse(value, f"is not a directory{why}: give a local encoder directory (config.json, weights and "
                             "a tokenizer)")
    from transformers.utils import cached_file  # only where a hub id is given and the machine is online

    # Each file of a checkpoint lands in the same snapshot directory of the local cache, which is then checked
    # and hashed like any team's directory (single-file weights: the small encoders students start from).
    got = [cached_file(value, name, _raise_exceptions_for_missing_entries=False)
           for name in ("config.json", *WEIGHT_FILES, *TOKENIZER_FILES)]
    first = next((g for g in got if g), None)
    if first is None:
        raise _refuse(value, "is neither a directory here nor a model on the hub: give a local encoder directory")
    return Path(first).parent


def _refuse(value: str, why: str) -> InvalidInput:
    return InvalidInput(f"{STUDENT_INIT} {value!r} {why}.", field=STUDENT_INIT)


@dataclass(frozen=True)
class StudentStart:
    """What a student started from, as the run's result, the search, the Train page, the CLI and the decision
    record show it: its config, the teacher's layers, a pretrained encoder (directory and SHA-256), and whether it
    was pre-trained here (on how many of the project's texts, for how many steps)."""

    kind: str  # "config", "teacher layers", "pretrained", "pre-trained here"
    sentence: str
    directory: str | None = None
    sha256: str | None = None
    pretrain_texts: int | None = None
    pretrain_steps: int | None = None
    pretrain_seconds: float | None = None


def planned_start(*, family: str, plan: InitPlan, encoder: Encoder | None, domain_pretrain: bool) -> StudentStart:
    """How a student starts, as known before any training: the team's encoder, the teacher's layers or the config
    (pre-training here is told by ``pretrained_start`` once it has run)."""
    if family != "transformer":
        return StudentStart("config", "")
    if encoder is not None:
        return StudentStart("pretrained", f"{encoder.sentence()}, with a new classification head",
                            directory=str(encoder.path), sha256=encoder.sha256)
    if domain_pretrain:
        return StudentStart("pre-trained here", "to be pre-trained here on the project's texts")
    return StudentStart("teacher layers" if plan.from_teacher else "config", plan.sentence)


def pretrained_start(*, encoder: Encoder | None, report) -> StudentStart:
    """A student pre-trained here (``report``: core.ml.pretrain.PretrainReport), from the config or an encoder."""
    base = encoder.sentence() if encoder else "the config"
    return StudentStart(
        "pre-trained here", f"pre-trained here (masked-language modelling) on {report.texts:,} of the project's "
                            f"texts for {report.steps:,} steps ({report.seconds:.0f} s) from {base}, then given a "
                            "classification head",
        directory=str(encoder.path) if encoder else None, sha256=encoder.sha256 if encoder else None,
        pretrain_texts=report.texts, pretrain_steps=report.steps, pretrain_seconds=report.seconds)
