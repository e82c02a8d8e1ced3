"""Two processes that run the same queued job at the same moment: exactly one claims it (issue 9, races)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from core.domain.errors import InvalidInput
from core.store import jobs

ROUNDS = 6
REPO = Path(__file__).resolve().parents[2]

# Each process loads everything first, then for every round waits until both are ready and runs that round's job;
# the handler leaves one line per execution.
WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from core.store import jobs
    from core.domain.errors import InvalidInput

    out, gate, ids = Path(sys.argv[1]), Path(sys.argv[2]), [int(x) for x in sys.argv[3:]]

    @jobs.handler("test-claim")
    def work(ctx):
        with open(out, "a") as f:
            f.write(f"{ctx.job_id} {os.getpid()}\\n")
        return {}

    for r, job_id in enumerate(ids):
        (gate / f"ready-{r}-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while len(list(gate.glob(f"ready-{r}-*"))) < 2 and time.monotonic() < deadline:
            pass
        try:
            jobs.run(job_id)
            print("ran", job_id)
        except InvalidInput as exc:
            print("refused", job_id, exc)
""")


@jobs.handler("test-claim")
def _work(ctx) -> dict:  # noqa: ANN001 (registered here only so submit accepts the kind)
    return {}


def test_two_processes_claiming_one_job_run_it_once(engine, session, demo, tmp_path):
    from core.access import projects

    routing = projects.get_project(session, "Support ticket routing")
    ids = [jobs.submit(session, actor=demo["dana"], project=routing, kind="test-claim", params={}).id
           for _ in range(ROUNDS)]
    out, gate = tmp_path / "executions.txt", tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, str(script), str(out), str(gate), *map(str, ids)]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    runs = Counter(int(line.split()[0]) for line in out.read_text().splitlines())
    assert runs == Counter({i: 1 for i in ids}), f"executions per job: {dict(runs)}"
    said = "".join(o[0] for o in outputs)
    assert said.count("ran ") == ROUNDS and said.count("refused ") == ROUNDS
    assert "another process may have claimed it first" in said


def test_a_running_job_cannot_be_claimed_again(engine, session, demo):
    from core.access import projects

    routing = projects.get_project(session, "Support ticket routing")
    job = jobs.submit(session, actor=demo["dana"], project=routing, kind="test-claim", params={})
    jobs._claim(engine, job.id)
    try:
        jobs._claim(engine, job.id)
    except InvalidInput as exc:
        assert f"job #{job.id} is running" in str(exc)
    else:
        raise AssertionError("a second claim of a running job succeeded")
