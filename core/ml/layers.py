"""Intermediate-layer distillation (TinyBERT's losses), beside the soft-label loss of ``core.ml.kd``.

When the teacher is a local transformers model and the student reads the same token ids (it uses the teacher's
tokenizer), the student can learn more than the teacher's final distribution:

- hidden states: MSE between a student layer's output and its mapped teacher layer's output (and embeddings to
  embeddings), through a learned linear projection when the student is narrower or wider than the teacher (the
  projection trains with the student and is dropped after training, as TinyBERT's W_h);
- attention: MSE between the mapped layers' attention probabilities, heads averaged when the head counts differ.

The layer map is uniform: with k = teacher layers // student layers, student layer i (0-based) learns from teacher
layer (i + 1)·k − 1, so the student's last layer learns from the teacher's last. Padding is left out of both losses.
Pure torch: the loop (core.ml.loop) runs the teacher in eval mode without gradients and adds these terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from core.ml import build, init
from core.ml.config import TrainConfig

SAMPLE_TEXTS = 64  # texts tokenized by both tokenizers to check that token positions line up
# Memory for the teacher's states of the rows already seen (reused in later epochs instead of a teacher pass);
# rows past it are run through the teacher on every pass.
CACHE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class LossPlan:
    """Which losses a run trains with, and why: recorded in the run's result and the decision record."""

    hidden_weight: float = 0.0  # 0 when the hidden-state loss is not used
    attention_weight: float = 0.0  # 0 when the attention loss is not used
    # (student hidden-state index, teacher hidden-state index): 0 is the embeddings, i + 1 layer i's output.
    hidden_map: list[tuple[int, int]] = field(default_factory=list)
    # (student layer, teacher layer), 0-based: whose attention probabilities the student matches.
    attention_map: list[tuple[int, int]] = field(default_factory=list)
    projection: tuple[int, int] | None = None  # (student width, teacher width) when a projection is learned
    sentence: str = "soft labels"

    @property
    def layered(self) -> bool:
        return self.hidden_weight > 0 or self.attention_weight > 0


def uniform_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs, 0-based: student layer i learns from teacher layer (i + 1)·k − 1."""
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"a uniform map needs 1 to {teacher_layers} student layers, not {student_layers}")
    k = teacher_layers // student_layers
    return [(i, (i + 1) * k - 1) for i in range(student_layers)]


def hidden_map(layer_map: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The map over hidden-state indices (as transformers numbers them): embeddings to embeddings, then each layer's
    output to its mapped teacher layer's output."""
    return [(0, 0), *((s + 1, t + 1) for s, t in layer_map)]


def _soft_only(cfg: TrainConfig, why: str) -> LossPlan:
    return LossPlan(sentence=f"{soft_label_words(cfg)} alone: {why}")


def soft_label_words(cfg: TrainConfig) -> str:
    return f"soft labels (T {cfg.temperature:g}, α {cfg.alpha:g})"


def plan(cfg: TrainConfig, student, teacher_dir: Path | str | None, texts: list[str]) -> LossPlan:
    """The losses a run of ``cfg`` uses for ``student`` taught by the model in ``teacher_dir``, with the sentence
    that says which (and, when it uses soft labels alone although weights were asked, why)."""
    if cfg.hidden_weight == 0 and cfg.attention_weight == 0:
        return LossPlan(sentence=f"{soft_label_words(cfg)} alone (hidden-state and attention weights are 0)")
    if cfg.family != "transformer":
        return _soft_only(cfg, "an n-gram student has no layers to match the teacher's")
    teacher = init.teacher_config(teacher_dir)
    if teacher is None:
        return _soft_only(cfg, "the teacher is not a local transformers model, so it has no layers to match")
    if not same_tokens(student.tokenizer, build.load_tokenizer(teacher_dir), texts[:SAMPLE_TEXTS]):
        return _soft_only(cfg, "the student does not use the teacher's tokenizer, so its token positions do not "
                               "line up with the teacher's")
    mine, theirs = student.module.config, teacher
    if mine.num_hidden_layers > theirs["num_hidden_layers"]:
        return _soft_only(cfg, f"the student has more layers ({mine.num_hidden_layers}) than the teacher "
                               f"({theirs['num_hidden_layers']})")
    pairs = uniform_map(mine.num_hidden_layers, theirs["num_hidden_layers"])
    width = (mine.hidden_size, theirs["hidden_size"])
    return _layered(cfg, pairs, width, heads=(mine.num_attention_heads, theirs["num_attention_heads"]))


def _layered(cfg: TrainConfig, pairs: list[tuple[int, int]], width: tuple[int, int],
             *, heads: tuple[int, int]) -> LossPlan:
    projection = width if width[0] != width[1] else None
    parts = [soft_label_words(cfg)]
    if cfg.hidden_weight > 0:
        how = f", projected {width[0]} → {width[1]} wide" if projection else ""
        parts.append(f"hidden states (weight {cfg.hidden_weight:g}; embeddings → embeddings, "
                     f"{_pairs_words(pairs)}{how})")
    if cfg.attention_weight > 0:
        avg = f", heads averaged ({heads[0]} vs {heads[1]})" if heads[0] != heads[1] else ""
        parts.append(f"attention (weight {cfg.attention_weight:g}; {_pairs_words(pairs)}{avg})")
    return LossPlan(hidden_weight=cfg.hidden_weight, attention_weight=cfg.attention_weight,
                    hidden_map=hidden_map(pairs) if cfg.hidden_weight > 0 else [],
                    attention_map=pairs if cfg.attention_weight > 0 else [],
                    projection=projection if cfg.hidden_weight > 0 else None, sentence=" + ".join(parts))


def _pairs_words(pairs: list[tuple[int, int]]) -> str:
    """Layers numbered from 1, as people count them: "student layer 1 ← teacher layer 4"."""
    return ", ".join(f"student layer {s + 1} ← teacher layer {t + 1}" for s, t in pairs)


def same_tokens(mine, theirs, texts: list[str]) -> bool:
    """Whether two tokenizers give the same ids (same vocabulary, and the same ids on ``texts``)."""
    if mine is theirs:
        return True
    if len(mine) != len(theirs) or mine.pad_token_id != theirs.pad_token_id:
        return False
    sample = list(texts) or ["a"]
    # The same cut for both (a tokenizer's own limit may differ), and no warning about long texts.
    return mine(sample, truncation=True, max_length=512)["input_ids"] == \
        theirs(sample, truncation=True, max_length=512)["input_ids"]


class LayerDistiller(torch.nn.Module):
    """The teacher (frozen, eval mode) and the learned projection; ``loss`` gives the weighted layer terms.

    A module so that the projection's parameters can be handed to the student's optimizer and saved beside it.
    """

    def __init__(self, teacher_model, losses: LossPlan):
        super().__init__()
        self.losses = losses
        self.teacher = teacher_model.eval().requires_grad_(False)
        self.projection = torch.nn.Linear(*losses.projection) if losses.projection else None
        self.max_positions = int(getattr(teacher_model.config, "max_position_embeddings", 0) or 1 << 30)
        self._cache: dict[int, tuple[dict, dict]] = {}  # row index -> the teacher's mapped states for that row
        self._cached_bytes = 0

    def trainable(self) -> list[torch.nn.Parameter]:
        return list(self.projection.parameters()) if self.projection is not None else []

    def forward_student(self, student_model, batch: dict[str, torch.Tensor]):
        """The student's outputs with the hidden states and attention maps this plan needs."""
        return student_model(**batch, output_hidden_states=bool(self.losses.hidden_map),
                             output_attentions=bool(self.losses.attention_map))

    def loss(self, student_out, batch: dict[str, torch.Tensor], rows: list[int] | None = None) -> torch.Tensor:
        """hidden_weight · hidden-state MSE + attention_weight · attention MSE, on this batch.

        ``rows`` names the batch's rows (their indices in the training data): the teacher's states for a row are
        then kept after its first pass and reused in later epochs (the teacher is frozen), within CACHE_BYTES.
        """
        width = min(batch["input_ids"].shape[1], self.max_positions)  # the teacher reads no further
        short = {k: v[:, :width] for k, v in batch.items()}
        mask = short["attention_mask"]
        hidden, attention = self._teacher_states(short, rows)
        total = student_out.logits.new_zeros(())
        if self.losses.hidden_map:
            total = total + self.losses.hidden_weight * hidden_loss(
                student_out.hidden_states, hidden, self.losses.hidden_map, mask, projection=self.projection)
        if self.losses.attention_map:
            total = total + self.losses.attention_weight * attention_loss(
                student_out.attentions, attention, self.losses.attention_map, mask)
        return total

    def _teacher_states(self, short: dict[str, torch.Tensor], rows: list[int] | None):
        """({teacher hidden index: (batch, width, dim)}, {teacher layer: (batch, heads, width, width)}), from the
        cache when every row is in it, else from a teacher pass (whose rows are then cached)."""
        lengths = short["attention_mask"].sum(dim=1).tolist()
        if rows is not None and all(r in self._cache for r in rows):
            return self._assemble([self._cache[r] for r in rows], short["input_ids"].shape[1])
        with torch.no_grad():
            out = self.teacher(**short, output_hidden_states=bool(self.losses.hidden_map),
                               output_attentions=bool(self.losses.attention_map))
        hidden = {t: out.hidden_states[t] for _, t in self.losses.hidden_map}
        attention = {t: out.attentions[t] for _, t in self.losses.attention_map}
        for i, r in enumerate(rows or []):
            n = int(lengths[i])
            kept = ({t: h[i, :n].clone() for t, h in hidden.items()},
                    {t: a[i, :, :n, :n].clone() for t, a in attention.items()})
            size = sum(x.numel() * x.element_size() for part in kept for x in part.values())
            if self._cached_bytes + size <= CACHE_BYTES:
                self._cache[r], self._cached_bytes = kept, self._cached_bytes + size
        return hidden, attention

    @staticmethod
    def _assemble(kept: list[tuple[dict, dict]], width: int):
        """The cached rows padded back into batch tensors (padding is masked out of both losses)."""
        hidden, attention = {}, {}
        for t, first in kept[0][0].items():
            hidden[t] = first.new_zeros((len(kept), width, first.shape[-1]))
            for i, (states, _) in enumerate(kept):
                hidden[t][i, :states[t].shape[0]] = states[t]
        for t, first in kept[0][1].items():
            attention[t] = first.new_zeros((len(kept), first.shape[0], width, width))
            for i, (_, maps) in enumerate(kept):
                n = maps[t].shape[-1]
                attention[t][i, :, :n, :n] = maps[t]
        return hidden, attention


def hidden_loss(student_states, teacher_states, pairs: list[tuple[int, int]], mask: torch.Tensor,
                *, projection: torch.nn.Module | None = None) -> torch.Tensor:
    """Mean over the mapped pairs of the MSE between (projected) student and teacher hidden states, over the
    tokens ``mask`` keeps (the first ``mask.shape[1]`` positions)."""
    keep = mask.bool()
    terms = []
    for s, t in pairs:
        mine = student_states[s][:, :mask.shape[1]]
        if projection is not None:
            mine = projection(mine)
        terms.append(F.mse_loss(mine[keep], teacher_states[t][keep].to(mine.dtype)))
    return torch.stack(terms).mean()


def attention_loss(student_attn, teacher_attn, pairs: list[tuple[int, int]], mask: torch.Tensor) -> torch.Tensor:
    """Mean over the mapped layers, heads and kept query tokens of the squared difference between the attention
    distributions (summed over the kept keys). Heads are averaged on both sides when the counts differ."""
    n = mask.shape[1]
    keys = mask[:, None, None, :].to(torch.float32)
    rows = mask[:, None, :].to(torch.float32)  # (batch, 1, queries)
    terms = []
    for s, t in pairs:
        mine, theirs = student_attn[s][:, :, :n, :n], teacher_attn[t][:, :, :n, :n].to(student_attn[s].dtype)
        if mine.shape[1] != theirs.shape[1]:
            mine, theirs = mine.mean(dim=1, keepdim=True), theirs.mean(dim=1, keepdim=True)
        per_row = ((mine - theirs) ** 2 * keys).sum(dim=-1)  # (batch, heads, queries)
        weight = rows.expand_as(per_row)
        terms.append((per_row * weight).sum() / weight.sum().clamp_min(1.0))
    return torch.stack(terms).mean()


def eager_attention(model) -> str | None:
    """Switch ``model`` to eager attention (sdpa returns no attention maps); returns what it was, to restore."""
    was = getattr(model.config, "_attn_implementation", None)
    if was != "eager":
        model.set_attn_implementation("eager")
    return was


def distiller(losses: LossPlan, teacher_dir: Path | str, student_model, device) -> LayerDistiller:
    """The teacher loaded from ``teacher_dir`` on ``device``, with the projection ``losses`` asks for."""
    teacher = build.load_classifier(teacher_dir)
    if losses.attention_map:
        eager_attention(teacher)
        eager_attention(student_model)
    return LayerDistiller(teacher, losses).to(device)
