"""Benchmark: what recording a local teacher's model directory costs (core.store.stored_dirs, issue 20's workers).

Figures, all in the same run, on a directory shaped like a saved model (one weights file and three small JSON
files of random bytes) in a temporary folder, the artifact store a ``file://`` folder beside it:
- the manifest a run records at submit (every file hashed) against the floor of reading every file;
- copying the files to the store under their hashes against ``shutil.copytree``; the same directory again
  (stored once: nothing is copied);
- "host B" (another data directory) fetching the files into its cache with every file checked, against the floor
  of copytree plus hashing; then the cached copy checked again (what each later job on that host pays).
Run: ``.venv/bin/python benchmarks/bench_teacher_dir.py [--quick] [--mib 300]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def model_like(path: Path, mib: int) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(os.urandom(mib * 2**20))
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (path / name).write_bytes(os.urandom(50_000))
    return path


def line(label: str, value: float, unit: str = "ms") -> None:
    print(f"  {label:<58} {value:>10,.2f}{' ms' if unit == 'ms' else 'x'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="an 8 MiB directory (the test's smoke run)")
    parser.add_argument("--mib", type=int, default=300, help="the weights file's size in MiB (default 300)")
    args = parser.parse_args()
    mib = 8 if args.quick else args.mib
    with tempfile.TemporaryDirectory(prefix="bench-teacher-dir-") as tmp:
        root = Path(tmp)
        os.environ.update(STILLROOM_DATA_DIR=str(root / "host-a"), STILLROOM_ARTIFACT_STORE=f"file://{root}/store")
        from core.store import stored_dirs
        from core.store.artifacts import file_sha256
        from core.store.config import get_settings

        model = model_like(root / "model", mib)
        files = sorted(model.iterdir())
        print(f"Local teacher directory: {mib} MiB of weights and 3 small files (load average (1, 5, 15 min): "
              f"before {os.getloadavg()})")
        read = timed(lambda: [f.read_bytes() for f in files])
        manifest = stored_dirs.manifest_of(model, max_files=1_000, max_bytes=2**40, field="model_dir")
        hashed = timed(lambda: stored_dirs.manifest_of(model, max_files=1_000, max_bytes=2**40, field="model_dir"))
        line("floor: read every file", read)
        line("manifest at submit (every file hashed)", hashed)
        line("ratio manifest / read", hashed / read, "x")
        copied = timed(lambda: shutil.copytree(model, root / "copy"))
        put = timed(lambda: stored_dirs.put(manifest, model))
        line("floor: shutil.copytree", copied)
        line("copy to the store under the files' hashes", put)
        line("ratio store copy / copytree", put / copied, "x")
        line("the same directory again (stored once)", timed(lambda: stored_dirs.put(manifest, model)))
        os.environ["STILLROOM_DATA_DIR"] = str(root / "host-b")
        get_settings.cache_clear()
        floor = copied + timed(lambda: [file_sha256(f) for f in files])
        fetched = timed(lambda: stored_dirs.here(manifest, recorded=root / "gone", what="bench"))
        line("floor: copytree + hash every file", floor)
        line("host B: fetch into its cache, every file checked", fetched)
        line("ratio fetch / floor", fetched / floor, "x")
        line("host B: cached copy checked again (each later job)",
             timed(lambda: stored_dirs.here(manifest, recorded=root / "gone", what="bench")))
        print(f"  load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
