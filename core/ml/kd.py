"""The knowledge-distillation loss, as small pure functions over tensors.

loss = α·T²·KL(teacher ‖ student at temperature T) + (1 − α)·CE(student, reference)

averaged over rows; a row with no reference (reference index −1) contributes
only its KD term, so unlabelled traffic trains the student through the teacher.
With a local transformers teacher, the loop may add intermediate-layer terms (hidden states, attention maps) from
core.ml.layers; this soft-label loss stays the validation loss either way, so runs compare on one scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_targets(teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's distribution at temperature T: softmax(log p / T), i.e. p^(1/T) renormalised.

    Written as a power rather than a log so a one-hot row (a teacher that gave
    only a label) stays exactly one-hot instead of producing log 0.
    """
    p = teacher_probs.clamp_min(0.0).pow(1.0 / temperature)
    return p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    reference: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Mean over rows of α·T²·KL(targets ‖ softmax(z/T)) + (1−α)·CE(z, reference) where reference ≥ 0."""
    targets = soft_targets(teacher_probs, temperature)
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    # kl_div takes the student's log-probabilities and the target's probabilities;
    # it treats 0·log 0 as 0, so one-hot targets are fine.
    kl = F.kl_div(log_student, targets, reduction="none").sum(dim=-1)
    has_ref = reference >= 0
    ce = F.cross_entropy(student_logits, reference.clamp_min(0), reduction="none") * has_ref
    return (alpha * temperature**2 * kl + (1.0 - alpha) * ce).mean()
