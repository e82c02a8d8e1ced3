"""The warm daemon's process: preload, accept, fork a child per command, report exits (see core.cli.warm).

Single-threaded: one selector watches the listening socket, each running command's pidfd (its exit) and its
client's socket (a forwarded signal, or the client gone: then the command is terminated, as a closed terminal
would). The child never returns into this loop: it ends with os._exit once its command has, after doing what the
interpreter's exit does for a command (threads joined, atexit handlers run, streams flushed).
"""

from __future__ import annotations

import fcntl
import gc
import io
import os
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from core.cli import warm

# Never loaded by the daemon (tests/cli/test_cli_startup.py keeps the WARM commands themselves free of them): the
# model stack, whose thread pools (OpenMP) are not safe to fork.
MODEL_STACK = ("torch", "transformers", "sklearn", "scipy", "onnxruntime")


def _load_libraries() -> None:
    """What the WARM commands stand on, loaded before the core modules: the table models, the engine's dialects and
    the PostgreSQL driver (reached only on a command's first database use), and pandas, in which core keeps the
    reports and predictions that review, decide and record read (0.3 s of their start otherwise). Forking after
    numpy and pyarrow load is what every preloading server does; both reset their thread pools in the child
    (pthread_atfork)."""
    # Imported here, not at the top: the daemon's alone; the client and every other command never pay for them.
    import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401, PLC0415

    import core.store.db  # noqa: F401, PLC0415

    try:
        import pandas  # noqa: F401, PLC0415
    except ImportError:
        pass
    try:
        import psycopg  # noqa: F401, PLC0415
        import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401, PLC0415
    except ImportError:
        pass


_TAKEN: list[int] = []  # Daemon._answer's word that a child took the connection and the descriptors


@dataclass
class Running:
    pid: int
    pidfd: int
    conn: socket.socket
    argv: list[str]


@dataclass
class Daemon:
    path: str
    lock: IO[str]
    ident: dict[str, object]
    stamp: tuple[tuple[str, int, int], ...]
    idle_s: float
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    served: int = 0
    running: dict[int, Running] = field(default_factory=dict)  # by pidfd
    listener: socket.socket | None = None
    last_active: float = field(default_factory=time.monotonic)
    library_modules: set[str] = field(default_factory=set)  # loaded before the core modules (for the tests)
    sel: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def preload(self) -> None:
        """Import what the WARM commands use, and nothing else: no setting is read and no engine made, so no child
        inherits a result. First the database layer and _LIBRARIES; then each core module the WARM command
        modules name, except those that would load the model stack (MODEL_STACK), which a command that needs one
        imports itself: no OpenMP pool exists in the process that forks."""
        from core.cli import base  # noqa: PLC0415  (this process only)

        _load_libraries()
        self.library_modules = set(sys.modules)
        blocked = {name: sys.modules.get(name) for name in MODEL_STACK}
        sys.modules.update(dict.fromkeys(MODEL_STACK))  # None: `import torch` raises ImportError meanwhile
        try:
            base.load_commands(sorted(warm.WARM))
        finally:
            for name, module in blocked.items():
                if module is None:
                    del sys.modules[name]
                else:
                    sys.modules[name] = module
        from sqlalchemy.orm import configure_mappers  # noqa: PLC0415

        configure_mappers()  # the table models' relations, built once here instead of on each child's first query
        gc.collect()
        gc.freeze()  # the children share these pages instead of copying them when the collector touches them

    def loop(self) -> None:
        self.last_active = time.monotonic()  # idle from now, not from before the preload
        try:
            self.listener = self._listen()
            with self.sel:
                self.sel.register(self.listener, selectors.EVENT_READ, None)
                self._run()
        finally:
            if os.getpid() == self.pid:  # never false: a child ends in _end; kept so that no change makes it so
                self._step_aside()

    def _listen(self) -> socket.socket:
        try:
            os.unlink(self.path)  # left by a daemon that died: this one holds the lock now
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        signal.signal(signal.SIGTERM, lambda *_: self._step_aside())
        return listener

    def _run(self) -> None:
        while self.listener is not None or self.running:
            wait = None if self.running else max(0.0, self.last_active + self.idle_s - time.monotonic())
            events = self.sel.select(wait)
            if not events and not self.running and time.monotonic() - self.last_active >= self.idle_s:
                return
            for key, _ in events:
                if key.data is None:
                    if self.listener is not None:
                        self._accept()
                elif key.data[0] == "exit":
                    self._reap(key.data[1])
                else:
                    self._from_client(key.data[1])

    def _accept(self) -> None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        conn.settimeout(5)
        fds: list[int] = []
        try:
            if _peer_uid(conn) != os.getuid():
                conn.close()
                return
            request, _ = warm.recv_json(conn)
            fds = self._answer(conn, request or {})
        except (OSError, ValueError):
            pass
        if fds is not _TAKEN:
            _close_all(fds)
            conn.close()

    def _answer(self, conn: socket.socket, request: dict[str, Any]) -> list[int]:
        """Answer a request; for a command: ready, then the client's go with its streams, then fork. Returns the
        descriptors received and still to close, or _TAKEN."""
        kind = request.get("kind")
        if kind == "status":
            warm.send_json(conn, {"status": self.status()})
        elif kind == "stop":
            warm.send_json(conn, {"stopping": True, "running": len(self.running)})
            self._step_aside()
        elif kind == "run" and (refusal := self._refusal(request)) is not None:
            warm.send_json(conn, {"refused": refusal})
        elif kind == "run":
            warm.send_json(conn, {"ready": True})
            # The client's word that it still waits, with its streams (5 s at most): a client that gave up meanwhile
            # runs the command itself, and no descriptor of its was ever held here.
            go, fds = warm.recv_json(conn, with_fds=3)
            if go != {"go": True} or len(fds) != 3:
                return fds
            self._fork(conn, request, fds)
            return _TAKEN
        return []

    def status(self) -> dict[str, object]:
        return {"pid": self.pid, "socket": self.path, "started": self.started, "served": self.served,
                "running": len(self.running), "idle_s": self.idle_s, "core": self.ident["core"]}

    def _refusal(self, request: dict[str, Any]) -> str | None:
        """Why this daemon must not run the command (then the client runs it itself), or None."""
        if request.get("identity") != self.ident:
            return "another interpreter, code or start-up environment"
        if warm.fingerprint(self.ident) != self.stamp:
            self._step_aside()  # a fresh daemon starts with the new code; this one ends its running commands
            return "the code or the installed packages changed since this daemon started"
        if not warm.wants(list(request.get("argv") or [])):
            return "not a command the daemon runs"
        return None

    def _fork(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        self.last_active = time.monotonic()  # only commands keep the daemon alive, not `daemon status`
        pid = os.fork()
        if pid == 0:
            self._become(conn, request, fds)  # never returns: the child ends in os._exit
        _close_all(fds)
        self.served += 1
        pidfd = os.pidfd_open(pid)
        item = Running(pid=pid, pidfd=pidfd, conn=conn, argv=list(request["argv"]))
        self.running[pidfd] = item
        warm.send_json(conn, {"pid": pid})
        self.sel.register(pidfd, selectors.EVENT_READ, ("exit", item))
        self.sel.register(conn, selectors.EVENT_READ, ("client", item))

    def _reap(self, item: Running) -> None:
        _, status = os.waitpid(item.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:
            warm.send_json(item.conn, {"exit": code if code >= 0 else 128 - code})
        except OSError:
            pass  # the client is gone
        self._forget(item)

    def _from_client(self, item: Running) -> None:
        try:
            message, _ = warm.recv_json(item.conn)
        except (OSError, ValueError):
            message = None
        allowed = {int(getattr(signal, name)) for name in warm.FORWARDED_SIGNALS}
        if message is None:  # the client went away: end its command as a closed terminal would
            self.sel.unregister(item.conn)
            signal.pidfd_send_signal(item.pidfd, signal.SIGHUP)
        elif message.get("signal") in allowed:
            signal.pidfd_send_signal(item.pidfd, int(message["signal"]))

    def _forget(self, item: Running) -> None:
        for fileobj in (item.pidfd, item.conn):
            try:
                self.sel.unregister(fileobj)
            except (KeyError, ValueError):
                pass
        os.close(item.pidfd)
        item.conn.close()
        del self.running[item.pidfd]
        self.last_active = time.monotonic()

    def _step_aside(self) -> None:
        """Take no more commands: give up the socket, then its lock (so a new daemon may start at once), and end
        when the running commands have."""
        listener, self.listener = self.listener, None
        if listener is not None:
            try:
                self.sel.unregister(listener)
            except (KeyError, ValueError, AttributeError, RuntimeError):
                pass
            try:
                os.unlink(self.path)
            except OSError:
                pass
            listener.close()
        self.lock.close()

    def _become(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        """In the child: drop the daemon's descriptors, take the client's streams, directory, umask and
        environment, and run the command; then end (_end)."""
        try:
            self.sel.close()
            for item in self.running.values():
                os.close(item.pidfd)
                item.conn.close()
            if self.listener is not None:
                self.listener.close()
            self.lock.close()
            conn.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            _close_all(fds)
            for name in ("SIGINT", "SIGTERM", "SIGHUP"):
                signal.signal(getattr(signal, name), signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL)
            os.chdir(request["cwd"])
            os.umask(int(request["umask"]))
            os.environ.clear()
            os.environ.update(request["env"])
            time.tzset()
            _streams(request.get("streams") or {})
            sys.argv = ["stillroom", *request["argv"]]
        except BaseException as exc:  # noqa: BLE001  (a child that cannot take over ends here, never in the loop)
            _say(fds, f"error: the Stillroom daemon could not run the command ({type(exc).__name__}: {exc}); "
                      f"STILLROOM_DAEMON=off runs it without the daemon.")
            os._exit(70)
        from core.cli.base import cli  # noqa: PLC0415  (preloaded)

        try:
            cli.main(args=list(request["argv"]), prog_name="stillroom")
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except KeyboardInterrupt:
            sys.excepthook(*sys.exc_info())  # as the interpreter would: the traceback, and 130
            code = 130
        except BaseException:  # noqa: BLE001  (no exception may carry the child back into the daemon's loop)
            sys.excepthook(*sys.exc_info())
            code = 1
        _end(code)


def _exit_code(exc: SystemExit) -> int:
    """The status the interpreter would exit with for this SystemExit (a message goes to stderr, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _end(code: int) -> None:
    """End the child as the interpreter's exit would, less its teardown: wait for the command's non-daemon threads,
    run its atexit handlers (the webhook sender's last pass), flush the streams. Tearing down every module would
    write to, and so copy, each page shared with the daemon: 40 ms a command with pandas loaded."""
    import atexit  # noqa: PLC0415
    import threading  # noqa: PLC0415

    try:
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except BaseException:  # noqa: BLE001
        code = code or 1
    os._exit(code)


def serve(path: str) -> None:
    """The daemon's life: take the socket's lock (or leave: another daemon has it), import, listen, fork a child for
    each command, report each child's exit, and exit when idle, asked to stop, or stale."""
    os.umask(0o077)
    lock = open(path + ".lock", "a")  # noqa: SIM115  (held for the daemon's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return
    ident = warm.identity(os.environ)
    daemon = Daemon(path=path, lock=lock, ident=ident, stamp=warm.fingerprint(ident),
                    idle_s=warm.settings(os.environ).idle_s)
    daemon.preload()
    daemon.loop()


def _peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a UNIX socket, as the kernel vouches (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _say(fds: list[int], sentence: str) -> None:
    """One line on the client's stderr, from a child that could not take over its streams."""
    for fd in (fds[2:3] or [2]) + [2]:
        try:
            os.write(fd, (sentence + "\n").encode(errors="replace"))
            return
        except OSError:
            continue


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _streams(settings: dict[str, list[str | None]]) -> None:
    """sys.stdin, stdout and stderr over descriptors 0, 1 and 2 as the client's interpreter had them: its encodings,
    stdout line-buffered on a terminal, stderr always."""

    def enc(name: str) -> tuple[str | None, str | None]:
        got = settings.get(name) or [None, None]
        return got[0], got[1]

    (in_enc, in_err), (out_enc, out_err), (err_enc, err_err) = enc("stdin"), enc("stdout"), enc("stderr")
    # PYTHONUNBUFFERED (or -u) made the daemon's own streams write through, as the client's (same start-up).
    through = bool(getattr(sys.__stdout__, "write_through", False))
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(open(0, "rb", closefd=False), encoding=in_enc, errors=in_err)
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(open(1, "wb", closefd=False), encoding=out_enc, errors=out_err,
                                                  line_buffering=os.isatty(1), write_through=through)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(open(2, "wb", closefd=False), encoding=err_enc,
                                                  errors=err_err or "backslashreplace", line_buffering=True,
                                                  write_through=through)
