"""Workers and their jobs' processes for the worker tests, with a job kind of their own.

``python -m worker_helpers worker N [--once]`` runs a worker (core.store.worker.Worker) whose jobs' processes are
``python -m worker_helpers child ID``: the same credential-proven ``jobs.run`` as ``stillroom jobs run``, with the
test kind registered. Every execution of a job appends "start ID PID" and "end ID PID" to $WORKER_TEST_OUT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from core.store import jobs

KIND = "test-worker"
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
WAIT_S = 120.0  # a guard against a hung job on a loaded machine, never a figure under test


@jobs.handler(KIND)
def work(ctx: jobs.JobContext) -> dict:
    """Params: sleep_s (work time), together (wait until that many jobs of its group have started), crash (the
    process dies inside the job), hold (wait until this file exists)."""
    p = ctx.params
    out = Path(os.environ["WORKER_TEST_OUT"])
    _line(out, f"start {ctx.job_id} {os.getpid()}")
    if p.get("crash"):
        os._exit(3)
    if p.get("together"):  # every job of the group has started, so none has ended: they all run at once
        group = out.with_name(f"group-{p.get('group', 0)}")
        _line(group, str(ctx.job_id))
        _wait_for(lambda: len(group.read_text().split()) >= p["together"], "the other jobs never ran at the same time")
    if p.get("hold"):
        _wait_for(lambda: Path(p["hold"]).exists(), "held too long")
    steps = 4
    for i in range(steps):
        time.sleep(float(p.get("sleep_s", 0.0)) / steps)
        ctx.progress((i + 1) / steps, f"step {i + 1} of {steps}", force=True)
    _line(out, f"end {ctx.job_id} {os.getpid()}")
    return {"pid": os.getpid()}


def _line(out: Path, text: str) -> None:
    with open(out, "a", encoding="utf-8") as f:
        f.write(text + "\n")


def _wait_for(ready, why: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(why)
        time.sleep(0.05)


def executions(out: Path) -> tuple[Counter, Counter]:
    """(starts, ends) per job id, as the jobs' processes wrote them."""
    lines = [line.split() for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    return (Counter(int(j) for what, j, _ in lines if what == "start"),
            Counter(int(j) for what, j, _ in lines if what == "end"))


def env(out: Path, **settings: str) -> dict[str, str]:
    """The environment of a worker (and its jobs' processes): the tests' database settings, this module on the
    path, and where executions are written."""
    path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "WORKER_TEST_OUT": str(out), **settings}


def spawn_child(claim) -> subprocess.Popen:  # noqa: ANN001 (a core.store.worker.Claim)
    return subprocess.Popen([sys.executable, "-m", "worker_helpers", "child", str(claim.job_id)], cwd=REPO,
                            env={**os.environ, jobs.CREDENTIAL_ENV: claim.credential})


def start_worker(out: Path, concurrency: int = 1, *, once: bool = False, **settings: str) -> subprocess.Popen:
    """A worker in a process group of its own (so a test can kill it with its jobs, as a host dies)."""
    argv = [sys.executable, "-m", "worker_helpers", "worker", str(concurrency)] + (["--once"] if once else [])
    return subprocess.Popen(argv, cwd=REPO, env=env(out, **settings), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def main(argv: list[str]) -> int:
    from core.store.db import get_engine
    from core.store.worker import Worker

    if argv[0] == "child":
        job = jobs.run(int(argv[1]), credential=os.environ[jobs.CREDENTIAL_ENV])
        return 0 if job.status == "done" else 1
    worker = Worker(engine=get_engine(), concurrency=int(argv[1]), once="--once" in argv, spawn=spawn_child,
                    say=lambda line: print(line, flush=True))
    signal.signal(signal.SIGTERM, worker.stop)
    report = worker.run()
    print(f"report {report.worker} {sorted(report.finished.items())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
