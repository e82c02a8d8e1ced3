"""``stillroom serve`` under load on loopback, on every core, against a bare uvicorn + Starlette endpoint.

Sets up a shipped project in a temporary data directory (a local transformer teacher trained on generated tickets,
an n-gram student distilled here, a tiny transformer student, the sponsor's ship decision, rollout events), starts
the real service as a subprocess with ``--workers N`` (default: the cores) and drives it with ``wrk`` (Debian's
package: found on the PATH, or installed with apt-get when this runs as root; said plainly when neither works,
and then a keep-alive client written on asyncio streams stands in, labelled, sharing the cores with the server).

Every request carries a serving token. Configurations, each measured in this run:
- the bare ceiling: a uvicorn + Starlette endpoint returning a constant JSON answer, same workers, same load;
- the n-gram student at stage 100 answering every request itself (threshold 0, no teacher sample): the service's
  own path, compared with the ceiling; the same with ``--no-auth`` (the token check's cost);
- the n-gram student at stage 100 with the default routing (threshold 0.5, 5 % of confident answers also asked
  of the teacher), the teacher micro-batched and one-by-one;
- teacher-only (stage shadow), for the student / teacher ratio;
- a transformer student at stage 100, micro-batched (``--micro-batch 32``) against one call per request.
Figures: requests/s with CONNECTIONS keep-alive clients for SECONDS, p50/p95 under that load, and single-request
p50/p95 (one connection, one request at a time). Budget: >= 2,000 req/s, p95 under load <= 50 ms, single p95
<= 1 ms for the n-gram student, >= half the bare ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the shipped-project builders of the serving tests

TEXTS = ["please refund the invoice today", "the app crash again since monday", "reset my password login",
         "charge twice on my payment urgent", "timeout error in the phone app", "my profile email is wrong"]
BARE_APP = '''from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def classify(request):
    return JSONResponse({"label": "billing", "confidence": 0.97, "served_by": "student", "stage": "100"})

app = Starlette(routes=[Route("/v1/classify", classify, methods=["POST"]), Route("/health", classify)])
'''
# wrk's script: a different text and id per request, the token from the environment, and the figures as JSON.
WRK_LUA = """local texts = {TEXTS}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_TOKEN") ~= "" then wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN") end
request = function()
  i = i + 1
  local body = '{"text":"' .. texts[(i % #texts) + 1] .. ' ' .. i .. '","slices":{"queue":"billing"}}'
  return wrk.format(nil, "/v1/classify", nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"n":%d,"us":%d,"p50":%d,"p95":%d,"bad":%d,"errors":%d}\\n', summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(95), e.status,
    e.connect + e.read + e.write + e.timeout))
end
""".replace("{TEXTS}", "{" + ", ".join(f'"{t}"' for t in TEXTS) + "}")


# --------------------------------------------------------------------------- the load generator


def find_wrk() -> tuple[str | None, str]:
    """wrk's path and how it was found; None (and why) when it cannot be had."""
    found = shutil.which("wrk")
    if found:
        return found, f"wrk found at {found}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "wrk is not installed and this is not root with apt-get (apt-get install wrk)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "wrk"]):
        subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False)
        if shutil.which("wrk"):
            return shutil.which("wrk"), "wrk installed now with apt-get install wrk"
    return None, "apt-get install wrk failed"


class Wrk:
    def __init__(self, path: str, script: Path):
        self.path, self.script = path, script

    def run(self, port: int, *, token: str | None, connections: int, seconds: float) -> dict:
        threads = max(1, min(connections, os.cpu_count() or 1))
        done = subprocess.run([self.path, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                               "-s", str(self.script), f"http://127.0.0.1:{port}/v1/classify"],
                              env={**os.environ, "BENCH_TOKEN": token or ""}, capture_output=True, text=True,
                              timeout=seconds + 60, check=True)
        line = next(x for x in done.stdout.splitlines() if x.startswith("WRK "))
        r = json.loads(line[4:])
        if r["errors"]:
            raise RuntimeError(f"{r['errors']} socket errors:\n{done.stdout}")
        return {"rps": r["n"] / (r["us"] / 1e6), "n": r["n"], "p50_ms": r["p50"] / 1000, "p95_ms": r["p95"] / 1000,
                "refused": r["bad"]}


class PyClient:
    """The stand-in when wrk cannot be had: keep-alive HTTP/1.1 on asyncio streams, on the server's cores."""

    def run(self, port: int, *, token: str | None, connections: int, seconds: float) -> dict:
        auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
        latencies: list[float] = []

        async def one(reader, writer, body: bytes) -> None:
            start = time.perf_counter()
            writer.write(b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         + auth + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the service answered {head.splitlines()[0].decode()}")
            length = next(int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)

        async def client(k: int, until: float) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            i = 0
            while time.perf_counter() < until:
                await one(reader, writer, json.dumps({"text": f"{TEXTS[(k + i) % len(TEXTS)]} {k}-{i}",
                                                      "slices": {"queue": "billing"}}).encode())
                i += 1
            writer.close()

        async def go() -> float:
            start = time.perf_counter()
            await asyncio.gather(*[client(k, start + seconds) for k in range(connections)])
            return time.perf_counter() - start

        elapsed = asyncio.run(go())
        q = statistics.quantiles(latencies, n=100)
        return {"rps": len(latencies) / elapsed, "n": len(latencies), "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000}


# --------------------------------------------------------------------------- servers


def setup(directory: Path, *, n_tickets: int, teacher_size: str):
    """A database in ``directory`` holding the moderation project shipped with an n-gram student, and an
    evaluation of a tiny transformer student of the same teacher (served by starting a stage on it)."""
    from eval_helpers import ticket_rows
    from review_helpers import lock_moderation_gate
    from serve_helpers import evaluation_of, shipped
    from sqlmodel import Session

    from conftest import good_qualification
    from core.access import people, projects
    from core.demo import seed as demo_mod
    from core.demo.teacher import train_teacher
    from core.qualify import qualification
    from core.store import config, db, jobs
    from core.store.models import TrainingRun
    from core.training import runs as training_runs
    os.environ["DATABASE_URL"] = f"sqlite:///{directory / 'stillroom.db'}"
    os.environ["STILLROOM_DATA_DIR"] = str(directory)
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    engine = db.init_db(db.get_engine())
    session = Session(engine, expire_on_commit=False)
    demo_mod.seed(session)
    demo = {p.username: people.get_user(session, p.username) for p in demo_mod.DEMO_PEOPLE}
    project = projects.get_project(session, demo_mod.MODERATION)
    qualification.record(session, actor=demo["sam"], project=project, inputs=good_qualification(), verdict="proceed")
    lock_moderation_gate(session, demo, project)
    started = time.perf_counter()
    teacher = train_teacher(ticket_rows(n_tickets), directory / "teacher", size=teacher_size, epochs=1)
    print(f"teacher: {teacher_size} transformer on {teacher.n_train:,} tickets, held-out accuracy "
          f"{teacher.accuracy:.3f}, {time.perf_counter() - started:.1f} s")
    ngram = shipped(session, engine, demo, project, directory, teacher_dir=teacher.path)
    teacher_run_id = session.get(TrainingRun, ngram.training_run_id).teacher_run_id
    run, job = training_runs.start_training(session, actor=demo["dana"], project=project,
                                            teacher_run_id=teacher_run_id,
                                            config={"family": "transformer", "size": "tiny", "epochs": 1})
    assert jobs.run(job.id, engine=engine).status == "done"
    session.expire_all()
    transformer = evaluation_of(session, project=project, actor=demo["dana"], run=session.get(TrainingRun, run.id))
    return session, demo, project, ngram, transformer


class BenchServer:
    """``stillroom serve`` as the tests start it (serve_helpers.Server), its stderr kept in a file to show when
    it does not come up."""

    def __init__(self, project: str, *, args: tuple[str, ...], directory: Path):
        from serve_helpers import free_port, serve_token

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = None if "--no-auth" in args else serve_token(project)
        self.stderr = directory / f"serve-{self.port}.err"
        with self.stderr.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "core.cli", "--as", "oscar", "serve", project,
                                          "--port", str(self.port), *args], cwd=REPO, stdout=subprocess.DEVNULL,
                                         stderr=err)

    def wait(self, workers: int, timeout: float = 600) -> BenchServer:
        """Until every worker has loaded its models and answered /health (each over a fresh connection)."""
        import httpx

        pids: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(pids) < workers and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                pids.add(httpx.get(f"{self.url}/health", timeout=5).json()["worker_pid"])
            except httpx.TransportError:
                time.sleep(0.2)
        if len(pids) < workers:
            self.stop()
            raise RuntimeError(f"serve: {len(pids)} of {workers} workers answered:\n"
                               f"{self.stderr.read_text()[-3000:]}")
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (uvicorn's workers); 0 off Linux.
    Per request it is steadier than requests/s on a machine that other work shares."""
    def cpu(p: str) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return cpu(str(pid)) + sum(cpu(c) for c in _children(pid))


def workers_memory(pid: int) -> list[dict]:
    """Each worker process of a server (its children, or itself when it has none): resident MB and whether torch's
    library is mapped into it; empty off Linux."""
    pids = _children(pid) or [str(pid)]
    found = []
    for p in pids:
        try:
            rss = next(int(x.split()[1]) for x in Path(f"/proc/{p}/status").read_text().splitlines()
                       if x.startswith("VmRSS:"))
            torch = "libtorch" in Path(f"/proc/{p}/maps").read_text()
        except (OSError, StopIteration):
            continue
        found.append({"rss_mb": rss / 1024, "torch": torch})
    return found


def _children(pid: int) -> list[str]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                children.append(stat.parent.name)
        except OSError:
            continue
    return children


def loaded(client, port: int, pid: int, *, token: str | None, connections: int, seconds: float) -> dict:
    """One load run, with the server's CPU time per request."""
    before = tree_cpu_s(pid)
    figures = client.run(port, token=token, connections=connections, seconds=seconds)
    figures["cpu_us"] = (tree_cpu_s(pid) - before) / max(figures["n"], 1) * 1e6
    return figures


def measure_service(client, project: str, *, args: tuple[str, ...], workers: int, connections: int,
                    seconds: float, singles: bool, directory: Path) -> dict:
    import httpx

    started = time.monotonic()
    server = BenchServer(project, args=("--workers", str(workers), *args), directory=directory).wait(workers)
    start_s = time.monotonic() - started
    try:
        client.run(server.port, token=server.token, connections=connections, seconds=min(seconds, 2))  # warm-up
        time.sleep(2)  # the warm-up's last requests, still answered after its client left, must not hold slots
        figures = {"load": loaded(client, server.port, server.proc.pid, token=server.token, connections=connections,
                                  seconds=seconds)}
        if singles:
            figures["single"] = client.run(server.port, token=server.token, connections=1, seconds=seconds / 2)
        figures["health"] = httpx.get(f"{server.url}/health", timeout=10).json()
        figures["start_s"], figures["memory"] = start_s, workers_memory(server.proc.pid)
    finally:
        server.stop()
    return figures


def measure_bare(client, directory: Path, *, workers: int, connections: int, seconds: float) -> dict:
    from serve_helpers import free_port

    (directory / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(directory), "--port",
                             str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        time.sleep(1.0)  # the other workers
        client.run(port, token=None, connections=connections, seconds=min(seconds, 2))
        return {"load": loaded(client, port, proc.pid, token=None, connections=connections, seconds=seconds)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------- report


def _row(name: str, r: dict) -> str:
    single = r.get("single")
    tail = f" {single['p50_ms']:9.2f}ms {single['p95_ms']:9.2f}ms" if single else " " * 24
    return (f"{name:44} {r['load']['rps']:9,.1f} {r['load']['p50_ms']:8.2f}ms {r['load']['p95_ms']:8.2f}ms{tail}"
            f" {r['load'].get('cpu_us', 0):10.1f}")


def _batches(r: dict) -> str:
    mb = r["health"].get("micro_batching", {})
    return ", ".join(f"{k} mean batch {v['mean']:.1f} (largest {v['largest']})" for k, v in mb.items()
                     if v["calls"]) or "no batches"


def report(results: dict, *, client_label: str, workers: int, connections: int, seconds: float,
           loads: tuple) -> bool:
    print(f"\n{connections} keep-alive connections, {seconds:g} s per configuration, loopback, {workers} worker "
          f"process(es) on {os.cpu_count()} cores; load generator: {client_label}")
    print(f"load average before {loads[0][0]:.2f} / {loads[0][1]:.2f} / {loads[0][2]:.2f}, after "
          f"{loads[1][0]:.2f} / {loads[1][1]:.2f} / {loads[1][2]:.2f} (os.getloadavg)")
    print(f"{'configuration':44} {'req/s':>9} {'load p50':>10} {'load p95':>10} {'single p50':>11} {'single p95':>11} "
          f"{'server CPU us/request':>10}")
    names = {"bare": "bare uvicorn + Starlette (ceiling)", "student": "student at stage 100",
             "no_auth": "  the same with --no-auth", "routed": "n-gram, default routing, micro-batched",
             "routed_1": "n-gram, default routing, one-by-one",
             "shadow": "teacher-only (stage shadow)", "tf_batch": "transformer student, micro-batched",
             "tf_one": "transformer student, one-by-one"}
    for key, name in names.items():
        if key in results:
            print(_row(name, results[key]))
    refused = {names[k]: r["load"].get("refused", 0) for k, r in results.items() if r["load"].get("refused")}
    if refused:
        print(f"  answers other than 200 (503: every slot busy, or the teacher failed): {refused}")
    s, bare = results["student"], results["bare"]
    share = s["load"]["rps"] / bare["load"]["rps"]
    print(f"  ratio student / bare ceiling req/s      {share:.2f} (budget >= 0.50)")
    if s["load"].get("cpu_us") and bare["load"].get("cpu_us"):
        print(f"  server CPU per request: student {s['load']['cpu_us']:.1f} us, bare {bare['load']['cpu_us']:.1f} us "
              f"({s['load']['cpu_us'] / bare['load']['cpu_us']:.2f}x; steadier than req/s on a shared machine)")
    for key in ("student", "tf_batch"):
        if results.get(key, {}).get("memory"):
            mem = results[key]["memory"]
            sizes = ", ".join(f"{m['rss_mb']:.0f}" for m in mem)
            print(f"  {names[key].strip()}: every worker answering {results[key]['start_s']:.1f} s after the command "
                  f"started; workers' resident memory {sizes} MB; torch loaded in {sum(m['torch'] for m in mem)} "
                  f"of {len(mem)} (a local teacher behind the student, or a torch student, needs it)")
    print(f"  ratio student / teacher-only req/s   {s['load']['rps'] / results['shadow']['load']['rps']:.1f}x")
    if "no_auth" in results:
        print(f"  token check: {s['load']['rps'] / results['no_auth']['load']['rps']:.2f}x the req/s without auth")
    for fast, slow, what in (("routed", "routed_1", "teacher calls (default routing)"),
                             ("tf_batch", "tf_one", "transformer student")):
        if fast in results and slow in results:
            f, o = results[fast]["load"], results[slow]["load"]
            print(f"  micro-batching, {what}: {f['rps'] / o['rps']:.2f}x the req/s, p95 {f['p95_ms']:.1f} ms "
                  f"against {o['p95_ms']:.1f} ms one-by-one; {_batches(results[fast])}")
    ok = (s["load"]["rps"] >= 2000 and s["load"]["p95_ms"] <= 50 and s["single"]["p95_ms"] <= 1.0 and share >= 0.5)
    caveat = "" if client_label.startswith("wrk") else " (Python client: not a measurement)"
    print(f"budget (>= 2,000 req/s, p95 under load <= 50 ms, single p95 <= 1 ms, >= half the bare ceiling): "
          f"{'met' if ok else 'MISSED'}{caveat}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per configuration: a smoke run, not a measurement")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="default: the number of cores")
    parser.add_argument("--teacher-size", default=None,
                        help="teacher model size (default: the demo's 4x256 'teacher'; 'small' with --quick)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    args = parser.parse_args()
    from serve_helpers import start_stage

    from core.rollout.config import set_config
    from core.serving.worker import default_workers

    seconds, workers = (2.0 if args.quick else args.seconds), args.workers or default_workers()
    wrk, how = find_wrk()
    print(how if wrk else f"NO wrk: {how}; falling back to the Python client on the same cores (labelled)")
    routed = {"teacher_sample_rate": 0.05, "must_escalate": []}
    alone = {"teacher_sample_rate": 0.0, "must_escalate": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(WRK_LUA)
        client = Wrk(wrk, script) if wrk else PyClient()
        label = "wrk (C, same machine)" if wrk else "Python asyncio client (same cores)"
        size = args.teacher_size or ("small" if args.quick else "teacher-4x256")
        session, demo, project, ngram, transformer = setup(Path(tmp), n_tickets=600 if args.quick else 3000,
                                                           teacher_size=size)
        loads = [os.getloadavg()]
        kw = {"workers": workers, "connections": args.connections, "seconds": seconds}
        results = {"bare": measure_bare(client, Path(tmp), **kw)}
        plan = [("student", ngram, "100", 0.0, alone, (), True), ("no_auth", ngram, "100", 0.0, alone,
                                                                   ("--no-auth",), False),
                ("routed", ngram, "100", 0.5, routed, (), False),
                ("routed_1", ngram, "100", 0.5, routed, ("--micro-batch", "1"), False),
                ("shadow", ngram, "shadow", 0.5, routed, (), True),
                ("tf_batch", transformer, "100", 0.0, alone, (), True),
                ("tf_one", transformer, "100", 0.0, alone, ("--micro-batch", "1"), True)]
        for key, evaluation, stage, threshold, settings, extra, singles in plan:
            if args.quick and key in ("no_auth", "routed", "routed_1"):
                continue
            set_config(session, actor=demo["oscar"], project=project, changes=settings)
            start_stage(session, actor=demo["oscar"], evaluation=evaluation, stage=stage, threshold=threshold)
            results[key] = measure_service(client, project.name, args=extra, singles=singles, directory=Path(tmp),
                                           **kw)
        loads.append(os.getloadavg())
        session.close()
    ok = report(results, client_label=label, workers=workers, connections=args.connections, seconds=seconds,
                loads=tuple(loads))
    if args.strict and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
