"""Domain pre-training: masked-language modelling of a transformer student on the project's own texts, before it is
distilled (as BERT was pre-trained, on far less text and for far fewer steps).

Pure torch and transformers, no database: the caller passes the texts (``core.training.pool.pretraining_texts``
leaves the holdout out, by id and by equal or near-equal text) and the time the run may spend. The encoder is
saved with its tokenizer as a model directory, and the student starts from it with a new classification head
(``core.ml.students.from_encoder``), the same path a team's own pretrained encoder takes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core.ml import build, students
from core.ml import device as devices
from core.ml.config import PRETRAINED_LR, TrainConfig

MLM_PROBABILITY = 0.15  # BERT's share of tokens to predict: of them 80 % [MASK], 10 % a random token, 10 % kept
PRETRAIN_LR = 1e-3  # a small encoder pre-trained from scratch for few steps
REPORT_FILE = "pretrain.json"


@dataclass(frozen=True)
class PretrainReport:
    texts: int  # distinct texts pre-trained on
    steps: int
    seconds: float
    first_loss: float | None
    last_loss: float | None  # mean masked-token loss of the last steps
    stop_reason: str  # "time budget", "max steps"


def collate(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows padded to the longest: (input_ids, attention_mask). The one place MLM batches are built."""
    return students.pad(rows, pad_id)


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, *, mask_id: int, vocab_size: int,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) for masked-language modelling: ``MLM_PROBABILITY`` of the ordinary tokens are chosen (at
    least one per batch), labels are -100 elsewhere; chosen ones become [MASK] (80 %), a random token (10 %) or
    stay (10 %). Padding and special tokens are never chosen."""
    chosen = (torch.rand(ids.shape, generator=gen) < MLM_PROBABILITY) & ~special
    if not chosen.any():
        candidates = (~special).nonzero()
        chosen[tuple(candidates[torch.randint(len(candidates), (1,), generator=gen)][0])] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    roll = torch.rand(ids.shape, generator=gen)
    inputs[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = torch.randint(vocab_size, ids.shape, generator=gen)[swap]
    return inputs, labels


def mlm_model(cfg: TrainConfig, *, vocab_size: int, encoder_dir: Path | None, teacher_dir: Path | None):
    """The model to pre-train: the team's encoder with a masked-language head (new where it has none), else a BERT
    of the configured size."""
    from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    torch.manual_seed(cfg.seed)
    if encoder_dir is not None:
        hf_logging.disable_progress_bar()
        return AutoModelForMaskedLM.from_pretrained(str(encoder_dir), local_files_only=True)
    size = students.transformer_size(cfg, teacher_dir)
    return BertForMaskedLM(BertConfig(
        vocab_size=vocab_size, hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, intermediate_size=size.intermediate,
        max_position_embeddings=max(cfg.max_length, 32)))


def pretrain(model, tokenizer, texts: list[str], *, out_dir: Path, cfg: TrainConfig,
             max_seconds: float | None) -> PretrainReport:
    """Masked-language-model training of ``model`` on ``texts`` for at most ``cfg.pretrain_steps`` steps and
    ``max_seconds``; saves the encoder and its tokenizer to ``out_dir`` (atomically) with the report."""
    if not texts:
        raise ValueError("no texts to pre-train on")
    began = time.monotonic()
    device = devices.pick(cfg.device)
    model.to(device).train()
    encoded = tokenizer(list(texts), truncation=True, max_length=cfg.max_length)["input_ids"]
    pad_id, mask_id = tokenizer.pad_token_id or 0, tokenizer.mask_token_id
    specials = set(tokenizer.all_special_ids)
    lr = cfg.lr or (PRETRAINED_LR if cfg.student_init else PRETRAIN_LR)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(cfg.seed)
    bs, steps, losses, reason = cfg.effective_batch_size, 0, [], "max steps"
    while steps < cfg.pretrain_steps and reason == "max steps":
        order = np.random.default_rng(cfg.seed + steps).permutation(len(encoded))
        for start in range(0, len(order), bs):
            ids, attention = collate([encoded[i] for i in order[start:start + bs]], pad_id)
            special = torch.isin(ids, torch.tensor(sorted(specials))) | (attention == 0)
            inputs, labels = mask_tokens(ids, special, mask_id=mask_id, vocab_size=len(tokenizer), gen=gen)
            batch = devices.to({"input_ids": inputs, "attention_mask": attention, "labels": labels}, device)
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            steps += 1
            losses.append(loss.item())
            if steps >= cfg.pretrain_steps:
                break
            if max_seconds is not None and time.monotonic() - began >= max_seconds:
                reason = "time budget"
                break
    report = PretrainReport(texts=len(texts), steps=steps, seconds=round(time.monotonic() - began, 2),
                            first_loss=losses[0] if losses else None,
                            last_loss=float(np.mean(losses[-10:])) if losses else None, stop_reason=reason)
    _save(model.cpu(), tokenizer, report, Path(out_dir))
    return report


def read_report(out_dir: Path) -> PretrainReport | None:
    """The report of a finished pre-training in ``out_dir`` (None when none finished there)."""
    path = Path(out_dir) / REPORT_FILE
    return PretrainReport(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def _save(model, tokenizer, report: PretrainReport, out_dir: Path) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def tokenizer_for(cfg: TrainConfig, *, encoder_dir: Path | None, teacher_dir: Path | None, texts: list[str]):
    """The tokenizer the student will keep: the encoder's, else the teacher's, else one trained on ``texts``."""
    source = encoder_dir or teacher_dir
    return build.load_tokenizer(source) if source else build.train_tokenizer(texts, max_length=cfg.max_length)
