"""The warm start: a background process per user and installation that has already imported the libraries the
database commands stand on, and forks a child for each command (issue 18).

A fresh interpreter spends about 0.4 s importing SQLAlchemy, SQLModel and pydantic before a command that opens the
database can begin (benchmarks/bench_cli_start.py); a fork of a process that already holds them begins at once.

- The client (``run``, called by ``main`` before click is imported) sends the command's arguments, the whole
  environment, the working directory, the umask and its own stdin, stdout and stderr (SCM_RIGHTS) over a UNIX
  socket. The daemon forks; the child takes all of them over and runs the command as `stillroom` would, then exits
  the normal way (atexit handlers, threads, flushed streams). The daemon sends back the exit status. Output goes
  straight to the client's terminal or pipe; Ctrl-C in the client reaches the child.
- Only WARM commands run this way (no model, short); any other command, any ``--help``, an interpreter started
  with flags, ``STILLROOM_DAEMON=off``, and any failure to reach the daemon run in the client's own process, as
  before. The first such miss starts the daemon in the background for the next command.
- Nothing a command computes reaches the next one: the daemon imports modules and nothing else (no settings read,
  no engine, no database); every child is a fresh fork of that state with the client's environment.
- Trust: the socket lives in a directory only this user may enter (checked on every use), and the daemon serves
  only peers of its own uid (SO_PEERCRED). It refuses a command, steps aside and exits once any file of the
  ``core`` package or any directory on ``sys.path`` (an install) changed since it started: no command runs old code.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import sys
from dataclasses import dataclass

PROTOCOL = 2
SWITCH = "STILLROOM_DAEMON"
IDLE = "STILLROOM_DAEMON_IDLE_S"
DEFAULT_IDLE_S = 900.0
# The commands that run in the daemon: they load no model and finish in moments. Of `jobs`, only the readers
# (`jobs run` trains models for minutes).
WARM = frozenset({"audit", "decide", "gate", "inbox", "jobs", "projects", "qualify", "record", "review", "roles",
                  "users", "whoami"})
WARM_JOBS = frozenset({"list", "show"})
ANSWER_S = 30.0  # a daemon that takes a command answers at once; one that does not is stuck, and bypassed
MAX_REQUEST = 4 << 20  # bytes; an environment is a few kB
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
# Variables read by the interpreter at start-up: a daemon serves only clients whose values equal its own.
_STARTUP_VARS = ("PYTHON", "LC_", "LANG")
_HEADER = struct.Struct("!I")
# Linux: the daemon needs pidfds (5.3) and SO_PEERCRED; elsewhere every command runs in its own process.
SUPPORTED = sys.platform == "linux" and hasattr(os, "pidfd_open") and hasattr(socket, "SO_PEERCRED")


class SettingError(ValueError):
    """A daemon setting with a value it cannot use; str() is the sentence that names the fix."""


@dataclass(frozen=True)
class Settings:
    enabled: bool
    idle_s: float


def settings(environ: dict[str, str] | os._Environ[str]) -> Settings:
    """STILLROOM_DAEMON (on, the default, or off) and STILLROOM_DAEMON_IDLE_S (seconds a daemon with nothing to do
    waits before it exits, default 900), validated."""
    switch = environ.get(SWITCH, "on").strip().lower()
    if switch not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
        raise SettingError(f"{SWITCH}={environ[SWITCH]!r} is neither on nor off: set it to on (the default) or off.")
    raw_idle = environ.get(IDLE, "").strip()
    try:
        idle_s = float(raw_idle) if raw_idle else DEFAULT_IDLE_S
    except ValueError:
        idle_s = -1.0
    if not 0 < idle_s < 10**7:
        raise SettingError(f"{IDLE}={raw_idle!r} is not a number of seconds above 0: set it to, say, "
                           f"{DEFAULT_IDLE_S:g}.")
    return Settings(enabled=switch in ("on", "1", "true", "yes"), idle_s=idle_s)


def wants(argv: list[str]) -> bool:
    """Whether argv names a WARM command (after the root's --as NAME) and asks for no help."""
    rest = list(argv)
    while rest and rest[0].startswith("--as"):
        rest = rest[2:] if rest[0] == "--as" else rest[1:]
    if not rest or rest[0] not in WARM or any(arg in ("--help", "-h") for arg in rest):
        return False
    return rest[0] != "jobs" or (len(rest) > 1 and rest[1] in WARM_JOBS)


def runtime_dir(environ: dict[str, str] | os._Environ[str]) -> str:
    """Where the sockets live: $XDG_RUNTIME_DIR/stillroom, else stillroom-UID in the temporary directory."""
    base = environ.get("XDG_RUNTIME_DIR")
    if base:
        return os.path.join(base, "stillroom")
    return os.path.join(environ.get("TMPDIR") or "/tmp", f"stillroom-{os.getuid()}")


def private_dir(path: str) -> str | None:
    """None when path is (now) a directory only this user may enter, else the sentence saying why it is not used."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        return f"{path} cannot be made ({exc.strerror})"
    import stat  # noqa: PLC0415  (only here: a few hundred microseconds on every warm command otherwise)

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return (f"{path} is not a directory private to you (owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}):"
                f" remove it, or run `chmod 700 {path}` if it is yours")
    return None


def identity(environ: dict[str, str] | os._Environ[str]) -> dict[str, object]:
    """What decides which code and interpreter state a command gets: a daemon serves only its own identity."""
    return {
        "protocol": PROTOCOL,
        "executable": os.path.realpath(sys.executable),
        "core": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "path": [os.path.abspath(entry) for entry in sys.path],
        "startup_env": sorted([k, v] for k, v in environ.items() if k.startswith(_STARTUP_VARS)),
    }


def socket_path(environ: dict[str, str] | os._Environ[str]) -> str:
    """The socket of the daemon for this interpreter, this code and these start-up variables."""
    digest = hashlib.sha256(json.dumps(identity(environ), sort_keys=True).encode()).hexdigest()[:20]
    return os.path.join(runtime_dir(environ), f"cli-{digest}.sock")


def fingerprint(ident: dict[str, object]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime in ns, size) of every source file of the core package and every directory on sys.path:
    an edited file or an install (which changes its site-packages directory) changes it."""
    seen = []
    for root, dirs, files in os.walk(str(ident["core"])):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                seen.append((os.path.join(root, name), st.st_mtime_ns, st.st_size))
    for entry in ident["path"]:  # type: ignore[attr-defined]
        try:
            st = os.stat(entry)
        except OSError:
            continue
        seen.append((entry, st.st_mtime_ns, st.st_size))
    return tuple(seen)


# --------------------------------------------------------------------------- the wire


def send_json(sock: socket.socket, message: dict[str, object], fds: list[int] | None = None) -> None:
    body = json.dumps(message).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        import array  # noqa: PLC0415  (the client's path only)

        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        data = data[sent:]
    sock.sendall(data)


def recv_json(sock: socket.socket, *, with_fds: int = 0) -> tuple[dict[str, object] | None, list[int]]:
    """One message (None at end of stream) and the descriptors that came with it."""
    fds: list[int] = []
    if with_fds:
        import array  # noqa: PLC0415

        first, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(with_fds * array.array("i").itemsize))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
    else:
        first = sock.recv(65536)
    buf = bytearray(first)
    if not buf:
        return None, fds
    while len(buf) < _HEADER.size or len(buf) < _HEADER.size + _HEADER.unpack_from(buf)[0]:
        if len(buf) >= _HEADER.size and _HEADER.unpack_from(buf)[0] > MAX_REQUEST:
            raise ValueError("message too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the stream ended inside a message")
        buf += chunk
    size = _HEADER.unpack_from(buf)[0]
    message = json.loads(bytes(buf[_HEADER.size:_HEADER.size + size]))
    if not isinstance(message, dict):
        raise ValueError("not a message")
    return message, fds


# --------------------------------------------------------------------------- the client


def run(argv: list[str]) -> int | None:
    """The exit code of argv's command when the daemon ran it; None when it must run in this process (not a WARM
    command, the daemon off or unreachable: then it is started for the next one)."""
    if not wants(argv) or not SUPPORTED or sys.flags.no_site or sys.flags.isolated or sys.warnoptions or sys._xoptions:
        return None
    environ = os.environ
    try:
        if not settings(environ).enabled:
            return None
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unusable = private_dir(runtime_dir(environ))
    if unusable is not None:
        print(f"note: the Stillroom daemon is not used: {unusable}.", file=sys.stderr)
        return None
    path = socket_path(environ)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    signals = _Forwarder(sock)  # from here on a Ctrl-C is held until it is known where the command runs
    reply = _offer(sock, path, {"kind": "run", "identity": identity(environ), "argv": argv, "env": dict(environ),
                                "cwd": os.getcwd(), "umask": _umask(), "streams": _stream_settings()})
    if reply is None or not reply.get("ready"):
        sock.close()
        if reply is None or reply.get("refused"):
            start(path)
        signals.release()  # the command runs here: a held Ctrl-C interrupts it as it would have
        return None
    try:  # committed: from here the command runs in the daemon or not at all, never twice
        send_json(sock, {"go": True}, fds=[0, 1, 2])
        reply, _ = recv_json(sock)
    except (OSError, ValueError):
        reply = None
    if reply is None or "pid" not in reply:
        sock.close()
        print("error: the Stillroom daemon took the command but did not start it: nothing ran; run it again "
              "(STILLROOM_DAEMON=off runs commands without the daemon).", file=sys.stderr)
        return 1
    signals.forward_held()
    return _wait_for_exit(sock, signals)


def _offer(sock: socket.socket, path: str, request: dict[str, object]) -> dict[str, object] | None:
    """Send the command and wait (ANSWER_S at most) for the daemon to say it is ready to take it: {"ready": true},
    {"refused": why}, {} when it did not answer in time, or None when there is no daemon to ask. Until the client
    says go (sending its streams with it), the daemon starts nothing and holds none of the client's descriptors,
    so a client that gives up here runs the command itself, once, and a pipe it writes to closes when it ends."""
    try:
        sock.settimeout(ANSWER_S)
        sock.connect(path)
        send_json(sock, request)
        reply, _ = recv_json(sock)
        sock.settimeout(None)  # the command itself may take as long as it takes
        return reply
    except TimeoutError:
        print(f"note: the Stillroom daemon did not answer within {ANSWER_S:g} s; the command runs without it.",
              file=sys.stderr)
        return {}
    except (OSError, ValueError):
        return None


class _Forwarder:
    """The client's Ctrl-C, SIGTERM and SIGHUP: held while the daemon has not yet taken the command, then sent to
    the command's process through the daemon."""

    def __init__(self, sock: socket.socket) -> None:
        import signal  # noqa: PLC0415  (the warm path only)

        self.signal, self.sock, self.held, self.forwarding = signal, sock, [], False
        self.previous = {name: signal.signal(getattr(signal, name), self.handle) for name in FORWARDED_SIGNALS}

    def handle(self, signum: int, _frame: object) -> None:
        if not self.forwarding:
            self.held.append(signum)
            return
        try:
            send_json(self.sock, {"signal": signum})
        except OSError:
            pass

    def forward_held(self) -> None:
        self.forwarding = True
        for signum in self.held:
            self.handle(signum, None)

    def release(self) -> None:
        for name, handler in self.previous.items():
            self.signal.signal(getattr(self.signal, name), handler)
        for signum in self.held:
            self.signal.raise_signal(signum)


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _stream_settings() -> dict[str, list[str | None]]:
    return {name: [getattr(stream, "encoding", None), getattr(stream, "errors", None)]
            for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr))}


def _wait_for_exit(sock: socket.socket, signals: _Forwarder) -> int:
    """Wait, forwarding signals to the command's process, until the daemon reports how it ended."""
    try:
        reply, _ = recv_json(sock)
    except (OSError, ValueError):
        reply = None
    finally:
        sock.close()
    if reply is None or not isinstance(reply.get("exit"), int):
        print("error: the Stillroom daemon stopped before the command ended: check what it did before running it "
              "again (STILLROOM_DAEMON=off runs commands without the daemon).", file=sys.stderr)
        return 1
    return int(reply["exit"])  # type: ignore[call-overload]


def start(path: str) -> None:
    """Start the daemon for `path` in the background, detached from this terminal; it exits at once when another
    one holds the socket's lock."""
    import subprocess  # noqa: PLC0415  (only when no daemon answered)

    keep = {k: v for k, v in os.environ.items()
            if k.startswith(_STARTUP_VARS) or k in ("PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR", IDLE, SWITCH)}
    code = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); from core.cli import daemon_loop; "
            "daemon_loop.serve(sys.argv[2])")
    try:
        subprocess.Popen([sys.executable, "-c", code, json.dumps([os.path.abspath(p) for p in sys.path]), path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=keep, cwd="/", start_new_session=True, close_fds=True)
    except OSError:
        pass  # the command runs here all the same


def ask(environ: dict[str, str] | os._Environ[str], kind: str) -> dict[str, object] | None:
    """The daemon's answer to a `status` or `stop` request; None when no daemon answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(socket_path(environ))
        send_json(sock, {"kind": kind})
        reply, _ = recv_json(sock)
        return reply
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
