"""The local teacher across Ray workers: the same model and batches as in this process, on many cores or machines.

Chosen with ``engine="ray"`` on the local teacher (``LocalConfig``; ``--engine ray`` in the CLI). Each worker is a
Ray actor that loads the model once and answers chunks of texts with the in-process code itself
(``LocalAdapter.predict_proba``), so outputs, labels and probabilities are the in-process path's. The driver sorts
the texts by length (as the in-process path sorts its batches), sends chunks out in that order, takes the answers
back in the same order and puts every row back where its text was; progress moves as chunks come back.

Ray is imported only here and only when a run asks for it: the embedded default needs no Ray installed
(`pip install 'stillroom[ray]'` brings it). With no address a local Ray instance is started for the run and
stopped after it; ``"auto"`` or ``ray://HOST:10001`` joins a team's cluster, whose workers must have Stillroom
installed and see the model directory at the same path (a shared mount).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import socket
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from core.domain.errors import InvalidInput, StillroomError
from core.teacher.outputs import Progress

if TYPE_CHECKING:
    import numpy as np

RAY_MAX_WORKERS = 1024
DEFAULT_WORKERS = 2
BATCHES_PER_CHUNK = 8  # a chunk is what one worker answers at a time: enough batches to sort by length within
IN_FLIGHT_PER_WORKER = 2  # chunks queued on each worker, so none waits for the driver between two chunks
CLIENT_PORT = 10001  # Ray client's port, when a ray:// address names none
CONNECT_TIMEOUT_S = 5
INSTALL = "pip install 'stillroom[ray]'"
ADDRESS = re.compile(r"auto|ray://[A-Za-z0-9.\-]+(:\d+)?|[A-Za-z0-9.\-]+:\d+")
SETTINGS = ("engine", "ray_address", "ray_workers")  # the local teacher's settings this module reads
ROOT = Path(__file__).resolve().parents[2]  # the folder holding core/, for a local instance's workers


class Batched(Protocol):
    """What a Ray worker runs: the local teacher (core.teacher.local.LocalAdapter), copied to it unloaded."""

    model_dir: Path
    labels: list[str]
    batch_size: int
    device_name: str
    ray: RayPlan | None

    def load(self) -> None: ...

    def predict_proba(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray: ...


class EngineFailed(StillroomError):
    """A Ray worker or the Ray cluster failed during the run; nothing was recorded."""


@dataclass(frozen=True)
class RayPlan:
    """Where a run's batches go: ``address`` None starts a local instance; ``workers`` actors, each with the model."""

    address: str | None = None
    workers: int = DEFAULT_WORKERS


def plan_of(config: Mapping[str, Any]) -> RayPlan | None:
    """The Ray plan a local teacher's settings ask for, or None for the in-process engine."""
    if config.get("engine", "in-process") != "ray":
        return None
    address = config.get("ray_address")
    return RayPlan(address=address.strip() if address else None, workers=config.get("ray_workers") or DEFAULT_WORKERS)


def recorded(plan: RayPlan | None) -> dict[str, Any]:
    """What a run records of its engine: the name always, and for Ray the address given and the workers used."""
    if plan is None:
        return {"engine": "in-process"}
    return {"engine": "ray", "ray_workers": plan.workers, **({"ray_address": plan.address} if plan.address else {})}


def check_engine(*, engine: str, address: str | None, workers: int | None) -> None:
    """ValueError with the fix when the engine settings do not fit together (LocalConfig validates with this)."""
    if engine != "ray":
        if address is not None or workers is not None:
            raise ValueError("the Ray address and workers (ray_address, ray_workers) are settings of the Ray "
                             "engine: add engine \"ray\" (--engine ray), or leave them out")
        return
    if address is not None and not ADDRESS.fullmatch(address.strip()):
        raise ValueError(f"the Ray address (ray_address) {address!r} is not one Ray accepts: give \"auto\" (the "
                         "cluster this machine belongs to), ray://HOST:10001 (a cluster's client port) or HOST:6379 "
                         "(its head), or leave it out to start a local Ray instance for the run")


def require_ray() -> None:
    """InvalidInput naming the install when Ray cannot be imported here (checked without importing it)."""
    if importlib.util.find_spec("ray") is None:
        raise InvalidInput(f"engine 'ray': Ray is not installed where Stillroom runs: {INSTALL}, or run the "
                           "teacher with engine 'in-process'.", field="engine")


def predict_proba(adapter: Batched, texts: Sequence[str], *, plan: RayPlan,
                  progress: Progress | None = None) -> np.ndarray:
    """``adapter.predict_proba(texts)``, answered by ``plan.workers`` Ray actors; rows in the order of ``texts``."""
    require_ray()
    import ray

    with connected(plan):
        actors = _start_workers(ray, adapter, plan)
        try:
            return _dispatch(ray, actors, texts, chunk=adapter.batch_size * BATCHES_PER_CHUNK,
                             n_labels=len(adapter.labels), progress=progress)
        except ray.exceptions.RayError as exc:
            raise EngineFailed(failure_sentence(exc)) from None
        finally:
            for actor in actors:
                ray.kill(actor)


@contextmanager
def connected(plan: RayPlan) -> Iterator[None]:
    """Ray, initialised for the run: a caller's own instance is used as it is; one started here is stopped after."""
    import ray

    if ray.is_initialized():
        yield
        return
    if plan.address:
        _check_reachable(plan.address)
    try:
        if plan.address is None:
            env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            ray.init(num_cpus=max(os.cpu_count() or 1, plan.workers), include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", runtime_env={"env_vars": env})
        else:
            ray.init(address=plan.address.strip(), log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        if plan.address:
            raise InvalidInput(f"ray_address: the Ray cluster at {plan.address!r} could not be reached "
                               f"({_first_line(exc)}): check the address, or leave it out to start a local Ray "
                               "instance.", field="ray_address") from None
        raise EngineFailed(f"A local Ray instance could not start ({_first_line(exc)}): check this machine's free "
                           "memory and temporary space, or give the address of a running cluster.") from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """InvalidInput when a cluster's head does not answer within seconds (Ray itself would retry for minutes)."""
    if address == "auto":  # Ray finds this machine's cluster itself, and says at once when there is none
        return
    host, _, port = address.removeprefix("ray://").partition(":")
    try:
        socket.create_connection((host, int(port or CLIENT_PORT)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise InvalidInput(f"ray_address: the Ray cluster at {address!r} does not answer ({exc}): check the address "
                           "and that the cluster is up, or leave it out to start a local Ray instance.",
                           field="ray_address") from None


def _start_workers(ray: Any, adapter: Batched, plan: RayPlan) -> list[Any]:
    """``plan.workers`` actors, each loading the model once; CPUs (and GPUs, when the device asks) shared out."""
    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)) // plan.workers) if plan.address is None else 1
    gpus = _gpus_per_worker(adapter.device_name, float(resources.get("GPU", 0)), plan.workers)
    worker = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(TeacherWorker)
    in_process = copy.copy(adapter)  # what each worker runs: the same settings, answering in its own process
    in_process.ray = None
    return [worker.remote(in_process) for _ in range(plan.workers)]


def _gpus_per_worker(device: str, cluster_gpus: float, workers: int) -> float:
    """A share of the cluster's GPUs per worker ("auto" takes them when there are any); none for "cpu"."""
    if device == "cpu" or device == "mps" or (device == "auto" and not cluster_gpus):
        return 0
    if not cluster_gpus:
        raise InvalidInput(f"device {device!r}: the Ray cluster has no GPU for its workers; use \"auto\" or "
                           "\"cpu\", or add GPU nodes.", field="device")
    return min(1.0, cluster_gpus / workers)


def _dispatch(ray: Any, actors: list[Any], texts: Sequence[str], *, chunk: int, n_labels: int,
              progress: Progress | None) -> np.ndarray:
    """Chunks out in length order, round robin, a few queued on each actor; answers taken back in the same order."""
    import numpy as np

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # like-sized texts share a chunk (less padding)
    chunks = [order[start:start + chunk] for start in range(0, len(order), chunk)]
    out = np.zeros((len(texts), n_labels), dtype=np.float32)
    in_flight: deque[tuple[int, Any]] = deque()

    def send(index: int) -> None:
        actor = actors[index % len(actors)]  # chunk i + k*workers goes to the actor that answered chunk i
        in_flight.append((index, actor.answer.remote([texts[i] for i in chunks[index]])))

    for index in range(min(len(chunks), IN_FLIGHT_PER_WORKER * len(actors))):
        send(index)
    sent, done = len(in_flight), 0
    try:
        while in_flight:
            index, ref = in_flight.popleft()
            out[chunks[index]] = ray.get(ref)
            if sent < len(chunks):
                send(sent)
                sent += 1
            done += len(chunks[index])
            if progress:
                progress(done / len(texts), f"{done:,} of {len(texts):,} texts on {len(actors)} Ray workers")
    except BaseException:
        _abandon(ray, actors, [ref for _, ref in in_flight])
        raise
    return out


def _abandon(ray: Any, actors: list[Any], refs: list[Any]) -> None:
    """Stop the workers and collect the answers still owed, so Ray logs no "unhandled error" for each of them."""
    for actor in actors:
        ray.kill(actor)
    for ref in refs:
        try:
            ray.get(ref, timeout=30)
        except Exception:  # noqa: BLE001 (the first failure is the one reported)
            pass


def failure_sentence(exc: BaseException) -> str:
    """One sentence for a Ray failure: what the worker raised (its own sentence for Stillroom's errors)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, StillroomError):
        return f"A Ray worker could not run the teacher: {cause} Nothing was recorded."
    if cause is not None:
        said = f"{type(cause).__name__}: {_first_line(cause)}"
        return (f"A Ray worker could not run the teacher ({said}); nothing was recorded: check that the model "
                "directory loads on every worker's machine, then run it again.")
    return (f"The Ray engine failed ({type(exc).__name__}: {_first_line(exc)}); nothing was recorded: a worker may "
            "have run out of memory, so try fewer --ray-workers or a smaller --batch-size, then run it again.")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300].rstrip(".")


class TeacherWorker:
    """One Ray actor: loads the model once when it starts, then answers chunks with the in-process code."""

    def __init__(self, adapter: Batched):
        self.adapter = adapter
        self.failed: Exception | None = None
        try:
            adapter.load()
        except Exception as exc:  # noqa: BLE001 (raised from answer: Ray hands a task's exception back whole,
            self.failed = exc  # while an actor that dies starting up leaves only its traceback's text)

    def answer(self, texts: list[str]) -> np.ndarray:
        if self.failed is not None:
            raise self.failed
        return self.adapter.predict_proba(texts)
