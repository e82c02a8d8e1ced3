"""Teacher inference: the local adapter (length-sorted, dynamically padded batches under inference_mode)
against a plain per-example ``transformers.pipeline`` loop, on the same model and the same inputs.

The model is the demo teacher's size (4 layers, 256 wide) with random weights:
throughput does not depend on what the weights learned. Both paths run in this
process, one after the other, so the ratio is measured in the same run.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python benchmarks/bench_teacher_local.py [--quick] [--strict]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LABELS = ["billing", "technical", "account", "shipping", "returns", "security", "refund", "other"]
VOCAB = ("invoice charge refund card payment app crash error login password account reset order parcel "
         "delivery late return damaged item security breach suspicious email please help urgent again today "
         "cannot open settings update version phone laptop browser customer support ticket thanks").split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    """Ticket-like inputs of mixed length (4 to 60 words), as production traffic has."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCAB) for _ in range(int(rng.triangular(4, 60, 12)))) for _ in range(n)]


def save_teacher(path: Path, texts: list[str]) -> Path:
    from core.ml.build import build_classifier, train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size=4000, max_length=128)
    model = build_classifier("teacher-4x256", labels=LABELS, vocab_size=len(tokenizer), max_length=128)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def bench_pipeline(model_dir: Path, texts: list[str]) -> tuple[float, list[str]]:
    import torch
    from transformers import pipeline

    from core.ml.build import load_classifier, load_tokenizer

    pipe = pipeline("text-classification", model=load_classifier(model_dir).eval(),
                    tokenizer=load_tokenizer(model_dir), device=-1)
    for t in texts[:10]:
        pipe(t, truncation=True)
    start = time.perf_counter()
    with torch.inference_mode():
        labels = [pipe(t, truncation=True)[0]["label"] for t in texts]
    return len(texts) / (time.perf_counter() - start), labels


def bench_adapter(model_dir: Path, texts: list[str], batch_size: int) -> tuple[float, list[str]]:
    from core.teacher.local import LocalAdapter

    adapter = LocalAdapter(model_dir, batch_size=batch_size)
    adapter.predict(texts[:64], labels=LABELS)  # load and warm up, as the pipeline was
    start = time.perf_counter()
    out = adapter.predict(texts, labels=LABELS)
    return len(texts) / (time.perf_counter() - start), [p.label for p in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="inputs to classify")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="200 inputs: a smoke run, not a measurement")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the ratio misses 5x")
    args = parser.parse_args()
    if args.quick:
        args.n = 200

    import torch

    texts = make_texts(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_teacher(Path(tmp) / "teacher", make_texts(5000, seed=1))
        pipe_rate, pipe_labels = bench_pipeline(model_dir, texts)
        adapter_rate, adapter_labels = bench_adapter(model_dir, texts, args.batch_size)
    same = sum(a == b for a, b in zip(pipe_labels, adapter_labels, strict=True)) / len(texts)
    ratio = adapter_rate / pipe_rate
    print(f"teacher 4x256, {len(texts):,} inputs, torch threads {torch.get_num_threads()}")
    print(f"  transformers.pipeline, one example at a time: {pipe_rate:8.1f} examples/s")
    print(f"  local adapter, batch {args.batch_size}, sorted by length:   {adapter_rate:8.1f} examples/s")
    print(f"  ratio: {ratio:.1f}x (target >= 5x); same label on {same:.1%} of inputs")
    if args.strict and ratio < 5:
        sys.exit(1)


if __name__ == "__main__":
    main()
