"""What a distillation run is asked to do: family, size, epochs, temperature, alpha.

Kept free of torch so the CLI and pages can validate a request before any
model code is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.ml.build import SIZES
from core.ml.device import FIX, NAMES

FAMILIES = ("transformer", "ngram")
PRETRAINED = "pretrained"  # the size of a student that starts from an encoder directory (student_init)


@dataclass(frozen=True)
class NgramSize:
    name: str
    buckets: int  # hashed feature slots (rows of the EmbeddingBag)
    dim: int


# The n-gram family's sizes: a 1M-parameter default and one step larger in both
# directions. Latency is dominated by featurising, not by the table's size.
NGRAM_SIZES = {
    "tiny": NgramSize("tiny", 2**16, 16),
    "small": NgramSize("small", 2**17, 32),
}

# Which size fields a run may override, per family (transformer sizes live in build.SIZES).
SIZE_FIELDS = {
    "transformer": ("layers", "hidden", "heads", "intermediate"),
    "ngram": ("buckets", "dim"),
}

# Learning rate and batch size when the request does not set them.
DEFAULT_LR = {"transformer": 2e-3, "ngram": 1e-2}
DEFAULT_BATCH = {"transformer": 32, "ngram": 64}
# A pretrained encoder is fine-tuned, not trained: a rate near BERT's fine-tuning rates keeps what it knows.
PRETRAINED_LR = 1e-4
# A transformer 256 wide or more trained from random weights needs a lower peak rate: at 2e-3 the 4-layer, 256-wide
# BERT collapses to one class (demo tickets, 5,000 rows, one epoch: 0.316 held-out accuracy; 0.910 at 5e-4), while
# the 64- and 128-wide sizes learn fastest at 2e-3. A student started from the teacher's layers keeps the default:
# measured there, 2e-3 and 5e-4 end within 0.01 of each other.
WIDE_HIDDEN, WIDE_LR = 256, 5e-4


def student_sizes(family: str) -> list[str]:
    """The sizes a person may choose for a student of ``family``: what TrainConfig accepts (besides size overrides),
    and what the Train page offers. The teachers' sizes are not students'."""
    if family == "ngram":
        return list(NGRAM_SIZES)
    return [*(k for k in SIZES if not k.startswith("teacher")), "half-teacher", PRETRAINED]


class TrainConfig(BaseModel):
    """One distillation run's settings; validated into one-sentence errors by core.domain.validation.parse."""

    model_config = ConfigDict(extra="forbid")

    # Titles are the Train page's labels, so a refusal names the field as the driver sees it.
    family: Literal["transformer", "ngram"] = Field(default="transformer", title="Family")
    size: str = Field(default="tiny", min_length=1, max_length=32, title="Size")
    size_overrides: dict[str, int] = Field(default_factory=dict)
    # A cap, not a schedule: early stopping ends the run once validation agreement with the teacher stops rising.
    epochs: int = Field(default=40, ge=1, le=200, title="Epochs (at most)")
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    lr: float | None = Field(default=None, gt=0, le=1.0)
    temperature: float = Field(default=2.0, gt=0, le=50, title="Temperature T")
    alpha: float = Field(default=0.5, ge=0, le=1, title="α (weight of the KD term)")
    # Intermediate-layer distillation (core.ml.layers), added to the soft-label loss when the teacher is a local
    # transformers model and the student uses its tokenizer; 0 leaves the term out. Off by default: on the real
    # ChatterBot benchmark (benchmarks/bench_distill_layers.py) neither term moved holdout accuracy beyond noise.
    hidden_weight: float = Field(default=0.0, ge=0, le=100, title="Hidden-state weight")
    attention_weight: float = Field(default=0.0, ge=0, le=100, title="Attention weight")
    patience: int = Field(default=3, ge=1, le=100, title="Early-stopping patience")
    # What early stopping watches: validation agreement with the teacher (the student's job), or the KD loss.
    stop_on: Literal["agreement", "loss"] = "agreement"
    # How much agreement must rise (a share: 0.002 = 0.2 points) for an epoch to count as progress.
    min_delta: float = Field(default=0.002, ge=0, le=0.5)
    # Wall-clock budget of the run: it stops after the epoch that crosses it (None: no limit).
    max_seconds: float | None = Field(default=None, gt=0, le=7 * 86_400)
    val_fraction: float = Field(default=0.1, gt=0, le=0.5, title="Validation share (not the holdout)")
    seed: int = Field(default=1234, ge=0, le=2**31 - 1, title="Seed")
    max_length: int = Field(default=128, ge=8, le=512)
    ngram_mode: Literal["mean", "sum"] = "mean"
    # The lengths of character n-grams an n-gram student hashes from each word (None: the featuriser's (3, 4)).
    # Shorter ones carry short words and unspaced scripts (CJK): (1, 2, 3, 4) took a language identifier from
    # 97 % to over 100 % of its teacher (benchmarks/bench_pretrained_teacher.py).
    char_ngrams: list[int] | None = Field(default=None, title="Character n-gram lengths")
    # A transformer student of the teacher's width starts from the teacher's layers (core.ml.init).
    init_from_teacher: bool = True
    # Where to train (core.ml.device.pick): "auto" takes a GPU when one is present, else the CPU.
    device: str = Field(default="auto", max_length=16, title="Device")
    # Train-loss points logged per epoch for the loss curve (besides one per epoch).
    points_per_epoch: int = Field(default=10, ge=0, le=1000)
    # Issue 20: where a transformer student starts. A local encoder directory (or a hub id where the machine is
    # online) with its tokenizer: the student is that encoder with a new head (size "pretrained", its own).
    student_init: str | None = Field(default=None, min_length=1, max_length=1000,
                                     title="Student starts from (encoder directory)")
    # Masked-language-model pre-training on the project's own inputs (holdout excluded) before distilling, in
    # ``pretrain_share`` of ``max_seconds`` and at most ``pretrain_steps`` steps (core.ml.pretrain).
    domain_pretrain: bool = Field(default=False, title="Pre-train on the project's texts first")
    pretrain_share: float = Field(default=0.3, gt=0, le=0.9, title="Share of the time budget for pre-training")
    pretrain_steps: int = Field(default=2000, ge=1, le=1_000_000, title="Pre-training steps (at most)")

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not NAMES.fullmatch(value.strip().lower()):
            raise ValueError(f"device {value!r} is not a device: {FIX}")
        return value.strip().lower()

    @field_validator("char_ngrams")
    @classmethod
    def _char_lengths(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or value != sorted(set(value)) or not all(1 <= n <= 6 for n in value)):
            raise ValueError(f"give char_ngrams as distinct lengths from 1 to 6 in rising order, e.g. [1, 2, 3, 4], "
                             f"not {value}")
        return value

    @model_validator(mode="after")
    def _char_family(self) -> TrainConfig:
        if self.char_ngrams is not None and self.family != "ngram":
            raise ValueError("only an n-gram student takes char_ngrams: choose family ngram or leave it out")
        return self

    @model_validator(mode="before")
    @classmethod
    def _pretrained_size(cls, data):
        """A student that starts from an encoder directory has that encoder's size: "pretrained" unless given."""
        if isinstance(data, dict) and data.get("student_init") and not data.get("size"):
            return {**data, "size": PRETRAINED}
        return data

    @model_validator(mode="after")
    def _known_size(self) -> TrainConfig:
        self._check_start()
        if self.size == PRETRAINED:
            return self
        known = student_sizes(self.family)
        if self.size not in known and not self.size_overrides:
            raise ValueError(f"size {self.size!r} is not a {self.family} size: use one of {', '.join(known)}")
        allowed = SIZE_FIELDS[self.family]
        for key, value in self.size_overrides.items():
            if key not in allowed:
                raise ValueError(f"size_overrides.{key} is not a {self.family} size field: use {', '.join(allowed)}")
            if value < 1:
                raise ValueError(f"size_overrides.{key} must be at least 1")
        return self

    def _check_start(self) -> None:
        """Where a student starts: settings that only a transformer takes, and a size that matches its start."""
        if self.family != "transformer" and (self.student_init or self.domain_pretrain):
            field = "student_init" if self.student_init else "domain_pretrain"
            raise ValueError(f"only a transformer student takes {field}: choose family transformer or leave "
                             f"{field} out")
        if self.size == PRETRAINED and not self.student_init:
            raise ValueError(f"size {PRETRAINED!r} is the size of the encoder given as student_init: give the "
                             "encoder directory, or choose tiny or small")
        if self.student_init and self.size != PRETRAINED:
            raise ValueError(f"student_init sets the student's size (the encoder's own): leave size {self.size!r} "
                             f"out or give {PRETRAINED!r}")
        if self.student_init and self.size_overrides:
            raise ValueError("size_overrides do not apply to a student that starts from student_init: leave them "
                             "out")

    @property
    def effective_lr(self) -> float:
        if self.lr or self.student_init:
            return self.lr or PRETRAINED_LR
        size = SIZES.get(self.size)
        hidden = self.size_overrides.get("hidden", size.hidden if size else 0)
        wide = self.family == "transformer" and hidden >= WIDE_HIDDEN
        return WIDE_LR if wide else DEFAULT_LR[self.family]

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or DEFAULT_BATCH[self.family]
