"""The local teacher across Ray workers against the same teacher in this process, on the same inputs in one run.

The model is the demo teacher's size (4 layers, 256 wide, random weights: throughput does not depend on what they
learned), as in bench_teacher_local.py. Measured, in this order: the in-process path (cold: loading the model
included; warm: loaded); the start-up of a local Ray instance (``ray_engine.connected``, the call a run makes);
then Ray with 1 and 2 workers, each run end to end (starting the workers, each loading the model once, answering,
stopping them), its steady rate from the first answer back to the last, and a tiny run of 8 inputs that measures
the per-run start-up alone. Every Ray run's answers are checked against the in-process answers.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python benchmarks/bench_teacher_ray.py [--quick] [--n N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_teacher_local import make_texts, save_teacher  # noqa: E402 (after the path is set)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average (1, 5, 15 min) {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def timed(adapter, texts: list[str]):
    """Seconds, probabilities, and the steady rate: inputs answered after the first answer came back, over the time
    from that answer to the last (start-up excluded, measured inside this one run; needs many chunks to mean much)."""
    marks: list[tuple[float, float]] = []
    start = time.perf_counter()
    probs = adapter.predict_proba(texts, progress=lambda f, _m: marks.append((time.perf_counter(), f)))
    seconds = time.perf_counter() - start
    (t0, f0), (t1, f1) = marks[0], marks[-1]
    steady = (f1 - f0) * len(texts) / (t1 - t0) if t1 > t0 else float("nan")
    return seconds, probs, steady


def line(label: str, value: float, unit: str) -> None:
    print(f"  {label:<62} {value:>10,.1f}{'' if unit == 'x' else ' '}{unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="inputs to classify")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true",
                        help="200 inputs in batches of 8 (4 chunks a run): a smoke run, not a measurement")
    args = parser.parse_args()
    if args.quick:
        args.n, args.batch_size = 200, 8

    import numpy as np
    import ray
    import torch

    from core.teacher.local import LocalAdapter
    from core.teacher.ray_engine import RayPlan, connected

    texts = make_texts(args.n)
    print(f"teacher 4x256, {len(texts):,} inputs, batch {args.batch_size}, torch threads here {torch.get_num_threads()}"
          f", Ray {ray.__version__}; {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_teacher(Path(tmp) / "teacher", make_texts(5000, seed=1))
        cold_s, base, _ = timed(LocalAdapter(model_dir, batch_size=args.batch_size), texts)
        warm_adapter = LocalAdapter(model_dir, batch_size=args.batch_size)
        warm_adapter.predict_proba(texts[:64])
        warm_s, _, _ = timed(warm_adapter, texts)
        line("in-process, cold (loading the model included)", len(texts) / cold_s, "inputs/s")
        line("in-process, warm (model loaded)", len(texts) / warm_s, "inputs/s")
        started = time.perf_counter()
        with connected(RayPlan(workers=2)):
            line("Ray local instance start-up (ray.init)", 1000 * (time.perf_counter() - started), "ms")
            for workers in (1, 2):
                adapter = LocalAdapter(model_dir, batch_size=args.batch_size, ray=RayPlan(workers=workers))
                start_s, _, _ = timed(adapter, texts[:8])
                run_s, probs, steady = timed(adapter, texts)
                same = float(np.mean(probs.argmax(1) == base.argmax(1)))
                gap = float(np.abs(probs - base).max())
                tag = f"Ray, {workers} worker{'s' if workers > 1 else ''}"
                line(f"{tag}: start the workers + load the model (8 inputs)", 1000 * start_s, "ms")
                line(f"{tag}: end to end", len(texts) / run_s, "inputs/s")
                line(f"{tag}: steady, first answer to last", steady, "inputs/s")
                line(f"ratio {tag} end to end / in-process cold", cold_s / run_s, "x")
                line(f"ratio {tag} steady / in-process warm", steady * warm_s / len(texts), "x")
                print(f"  {tag}: same label as in-process on {same:.1%} of inputs, largest probability gap {gap:.1e}")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
