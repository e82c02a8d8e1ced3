"""Issue 18: the warm daemon runs database commands exactly as a fresh process would, and nothing else.

Each test gets its own runtime directory (XDG_RUNTIME_DIR), so its own daemon, and stops it at the end. The
promises attacked: the same output, exit code and database effect as without the daemon; each command's own
environment, directory and stdin; no command on old code after an edit; no service to another uid or through a
directory others can enter; Ctrl-C and a vanished client end the command without its write.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from warm_helpers import PASSWORD, REPO, make_env, seen, status, stillroom, wait_until

from core.cli import daemon_loop, warm


@pytest.fixture
def env(tmp_path: Path):
    """A database with the admin ada and the project p1, and a daemon for this test's runtime directory."""
    env = make_env(tmp_path, STILLROOM_ADMIN_PASSWORD=PASSWORD)
    assert stillroom(env, "init", "--admin", "ada", daemon=False).returncode == 0
    assert stillroom(env, "--as", "ada", "projects", "create", "p1", daemon=False).returncode == 0
    started = stillroom(env, "daemon", "start")
    assert started.returncode == 0, started.stderr
    yield env
    stillroom(env, "daemon", "stop")


def test_warm_commands_answer_exactly_as_without_the_daemon(env):
    commands = [["--as", "ada", "whoami"], ["--as", "ada", "users", "list"], ["--as", "ada", "projects", "list"],
                ["--as", "ada", "gate", "history", "p1"], ["--as", "ada", "jobs", "list", "p1"],
                ["--as", "bob", "whoami"], ["--as", "ada", "record", "p1"], ["--as", "ada", "review", "kappa", "9"],
                ["audit", "verify", "--no-files"]]
    served_before = status(env)["served"]
    for argv in commands:
        cold, warm_run = stillroom(env, *argv, daemon=False), stillroom(env, *argv)
        assert seen(warm_run) == seen(cold), (argv, warm_run.stderr)
    assert {stillroom(env, *argv).returncode for argv in commands} >= {0, 2}
    assert status(env)["served"] == served_before + 2 * len(commands)  # every warm run above went through it


def test_a_write_through_the_daemon_reads_stdin_and_lands_in_the_chain(env):
    added = stillroom(env, "--as", "ada", "users", "add", "carol", "--display-name", "Carol", "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "carol" in stillroom(env, "--as", "ada", "users", "list", daemon=False).stdout
    verified = stillroom(env, "audit", "verify", daemon=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert status(env)["served"] >= 1


def test_each_command_gets_its_own_environment_and_directory(env, tmp_path: Path):
    other = make_env(tmp_path, "other", STILLROOM_ADMIN_PASSWORD=PASSWORD)
    assert stillroom(other, "init", "--admin", "zed", daemon=False).returncode == 0
    for _ in range(2):  # alternating databases through one daemon: nothing of one command reaches the next
        assert "zed" not in stillroom(env, "--as", "ada", "users", "list").stdout
        assert "ada" not in stillroom(other, "--as", "zed", "users", "list").stdout
        assert stillroom({**env, "STILLROOM_USER": "ada"}, "whoami").stdout.startswith("ada ")
        assert stillroom(env, "whoami").returncode == 2  # no STILLROOM_USER now: the setting is read again
    assert status(env)["served"] == 8


def test_each_command_works_in_its_own_directory(env, tmp_path: Path):
    # The console script puts its own directory, not the working one, first on sys.path: one daemon serves every
    # directory, and a relative database path is each command's own.
    script = Path(sys.executable).parent / "stillroom"
    relative = {**env, "DATABASE_URL": "sqlite:///db.db"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *argv], capture_output=True, text=True, cwd=cwd, env=relative, timeout=120)

    assert run("daemon", "start", cwd=tmp_path).returncode == 0
    try:
        here = run("--as", "ada", "users", "list", cwd=tmp_path)
        there = run("--as", "ada", "users", "list", cwd=elsewhere)
        assert here.returncode == 0 and "ada" in here.stdout, here.stderr
        assert there.returncode == 2 and "no user named 'ada'" in there.stderr  # a new, empty database there
        assert (elsewhere / "db.db").exists()
        assert "2 commands run" in run("daemon", "status", cwd=elsewhere).stdout
    finally:
        run("daemon", "stop", cwd=tmp_path)


def test_no_command_runs_on_code_edited_after_the_daemon_started(tmp_path: Path):
    code = tmp_path / "code"
    shutil.copytree(REPO / "core", code / "core", ignore=shutil.ignore_patterns("__pycache__"))
    env = make_env(tmp_path, STILLROOM_ADMIN_PASSWORD=PASSWORD)
    assert stillroom(env, "init", "--admin", "ada", daemon=False, pythonpath=code).returncode == 0
    assert stillroom(env, "daemon", "start", pythonpath=code).returncode == 0
    first = status(env, code)
    assert first["core"] == str(code / "core")
    assert stillroom(env, "--as", "ada", "whoami", pythonpath=code).stdout.startswith("ada (ada)")
    auth = code / "core" / "cli" / "auth.py"
    auth.write_text(auth.read_text().replace('click.echo(f"{user.username} (', 'click.echo(f"EDITED {user.username} ('))
    try:
        after = stillroom(env, "--as", "ada", "whoami", pythonpath=code)
        assert after.stdout.startswith("EDITED ada"), after.stdout + after.stderr
        fresh = wait_until(lambda: status(env, code), "a fresh daemon")
        assert fresh["pid"] != first["pid"]  # the stale one stepped aside; the next command started a new one
        assert stillroom(env, "--as", "ada", "whoami", pythonpath=code).stdout.startswith("EDITED ada")
    finally:
        stillroom(env, "daemon", "stop", pythonpath=code)


def test_a_stuck_daemon_is_bypassed_and_never_runs_the_command_too(env):
    """A daemon that does not answer within ANSWER_S is passed by: the command runs in its own process. When the
    daemon wakes it finds the request of a client that gave up, and must not run it a second time."""
    daemon_pid = status(env)["pid"]
    served = status(env)["served"]
    client = ("import sys; from core.cli import warm; warm.ANSWER_S = 1; "
              "sys.argv = ['stillroom', '--as', 'ada', 'users', 'add', 'fay', '--display-name', 'Fay', "
              "'--password-stdin']; from core.cli import main; main()")
    os.kill(daemon_pid, signal.SIGSTOP)
    try:
        done = subprocess.run([sys.executable, "-c", client], input=PASSWORD + "\n", capture_output=True, text=True,
                              cwd=REPO, env=env, timeout=120)
    finally:
        os.kill(daemon_pid, signal.SIGCONT)
    assert done.returncode == 0 and "did not answer within 1 s" in done.stderr, done.stderr
    assert wait_until(lambda: status(env), "the woken daemon")["served"] == served  # it dropped the stale request
    listed = stillroom(env, "--as", "ada", "users", "list", daemon=False).stdout
    assert listed.count("fay") == 1


def test_a_runtime_directory_others_may_enter_is_not_used(tmp_path: Path):
    env = make_env(tmp_path, STILLROOM_ADMIN_PASSWORD=PASSWORD)
    assert stillroom(env, "init", "--admin", "ada", daemon=False).returncode == 0
    shared = tmp_path / "run" / "stillroom"
    shared.mkdir(mode=0o700)
    shared.chmod(0o777)
    done = stillroom(env, "--as", "ada", "whoami")
    assert done.returncode == 0 and done.stdout.startswith("ada (ada)")
    assert "daemon is not used" in done.stderr and "chmod 700" in done.stderr
    assert list(shared.iterdir()) == []  # no daemon started, no socket made there


def test_the_daemon_serves_no_other_uid(tmp_path: Path, monkeypatch):
    path = str(tmp_path / "d.sock")
    daemon = daemon_loop.Daemon(path=path, lock=open(tmp_path / "d.lock", "a"), ident={}, stamp=(), idle_s=60)
    daemon.listener = daemon._listen()
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    a, b = socket.socketpair()
    assert daemon_loop._peer_uid(a) == os.getuid()  # the kernel's word, not the client's
    monkeypatch.setattr(daemon_loop, "_peer_uid", lambda _conn: os.getuid() + 1)
    forks = []
    monkeypatch.setattr(daemon, "_fork", lambda *args: forks.append(args))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    warm.send_json(client, {"kind": "run", "identity": {}, "argv": ["whoami"], "env": {}, "cwd": "/", "umask": 18},
                   fds=[0, 1, 2])
    daemon._accept()
    try:
        reply = warm.recv_json(client)[0]
    except ConnectionResetError:  # closed with the request unread
        reply = None
    assert reply is None  # closed without a word
    assert forks == [] and daemon.served == 0
    for s in (a, b, client):
        s.close()
    daemon._step_aside()
    assert not os.path.exists(path)


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("STILLROOM_DAEMON", "maybe", "neither on nor off"),
    ("STILLROOM_DAEMON_IDLE_S", "soon", "not a number of seconds above 0"),
    ("STILLROOM_DAEMON_IDLE_S", "-5", "not a number of seconds above 0"),
])
def test_a_bad_daemon_setting_is_one_sentence_and_exit_2(tmp_path: Path, variable: str, value: str, says: str):
    env = make_env(tmp_path, STILLROOM_ADMIN_PASSWORD=PASSWORD)
    env[variable] = value
    done = subprocess.run([sys.executable, "-m", "core.cli", "--as", "ada", "whoami"], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 2 and says in done.stderr and variable in done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "db.db").exists()


def test_an_idle_daemon_exits_and_removes_its_socket(tmp_path: Path):
    env = make_env(tmp_path, STILLROOM_DAEMON_IDLE_S="1")
    started = stillroom(env, "daemon", "start")
    assert started.returncode == 0 and "is ready" in started.stdout
    path = Path(warm.socket_path(env))
    wait_until(lambda: status(env) is None and not path.exists(), "the idle daemon to exit")


def prompting(env: dict[str, str], username: str) -> subprocess.Popen[str]:
    """`users add` with no password source: it prompts on stdin (a pipe left open), so it waits there until the
    client is interrupted."""
    client = subprocess.Popen([sys.executable, "-m", "core.cli", "--as", "ada", "users", "add", username,
                               "--display-name", username.title()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    wait_until(lambda: status(env)["running"] == 1, "the command to start in the daemon")
    return client


def test_ctrl_c_in_the_client_reaches_the_command_and_nothing_is_written(env):
    client = prompting(env, "dave")
    client.send_signal(signal.SIGINT)
    out, err = client.communicate(timeout=60)
    assert client.returncode == 1 and "Aborted" in err, out + err
    assert "dave" not in stillroom(env, "--as", "ada", "users", "list", daemon=False).stdout
    wait_until(lambda: status(env)["running"] == 0, "the command to end")


def test_a_password_typed_at_a_terminal_is_not_echoed_through_the_daemon(env):
    """The child has no controlling terminal of its own: getpass turns echo off on the client's terminal (its stdin)
    instead. A real pseudo-terminal, typed into as a person would."""
    pid, fd = pty.fork()
    if pid == 0:  # the client, on the terminal
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "core.cli", "--as", "ada", "users", "add", "gus",
                                   "--display-name", "Gus"], env)
    seen_on_terminal = bytearray()

    def read_until(marker: bytes) -> None:
        deadline = time.monotonic() + 60
        while marker not in seen_on_terminal and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    seen_on_terminal.extend(os.read(fd, 1024))
                except OSError:
                    return

    read_until(b"Password for gus")
    os.write(fd, b"typed-secret-0123456789\r")
    read_until(b"Repeat")
    os.write(fd, b"typed-secret-0123456789\r")
    read_until(b"Created gus")
    _, code = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(code) == 0, bytes(seen_on_terminal)
    assert b"Created gus" in seen_on_terminal and b"typed-secret" not in seen_on_terminal
    assert status(env)["served"] == 1  # it ran in the daemon
    assert "gus" in stillroom(env, "--as", "ada", "users", "list", daemon=False).stdout


def test_a_vanished_client_ends_its_command(env):
    client = prompting(env, "erin")
    client.kill()
    client.wait(timeout=60)
    wait_until(lambda: status(env)["running"] == 0, "the orphaned command to end")
    assert "erin" not in stillroom(env, "--as", "ada", "users", "list", daemon=False).stdout


@pytest.mark.parametrize(("argv", "wanted"), [
    (["--as", "ada", "whoami"], True), (["--as=ada", "users", "list"], True), (["audit", "verify"], True),
    (["jobs", "list", "p1"], True), (["jobs", "run", "3"], False), (["jobs"], False), (["--help"], False),
    (["users", "list", "--help"], False), (["train", "p1"], False), (["serve", "p1"], False), ([], False),
    (["worker"], False), (["demo"], False), (["init"], False), (["login"], False), (["daemon", "status"], False),
])
def test_only_short_no_model_commands_go_to_the_daemon(argv: list[str], wanted: bool):
    assert warm.wants(argv) is wanted


def test_where_the_daemon_cannot_run_every_command_runs_in_its_own_process(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(warm, "SUPPORTED", False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    started = []
    monkeypatch.setattr(warm, "start", started.append)
    assert warm.run(["--as", "ada", "whoami"]) is None
    assert started == [] and list(tmp_path.iterdir()) == []  # nothing made, nothing started


def test_the_preload_imports_no_model_stack_and_reads_no_setting(tmp_path: Path):
    probe = ("import json, sys; from core.cli import daemon_loop; from core.store import config, db; "
             "d = daemon_loop.Daemon(path='', lock=None, ident={}, stamp=(), idle_s=1); d.preload(); "
             "late = sorted(m for m in set(sys.modules) - d.library_modules if not m.startswith('core')); "
             "print(json.dumps([sorted(sys.modules), [getattr(sys.modules[m], '__file__', None) for m in late], "
             "config.get_settings.cache_info().currsize, db.get_engine.cache_info().currsize]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    loaded, late_files, settings_cached, engines_cached = json.loads(done.stdout)
    assert {"sqlalchemy", "sqlmodel", "click", "pandas", "core.store.models", "core.access.people"} <= set(loaded)
    assert {m.split(".")[0] for m in loaded} & set(daemon_loop.MODEL_STACK) == set()
    assert (settings_cached, engines_cached) == (0, 0)  # nothing computed from the daemon's own environment
    # A library first loaded while the model stack was hidden must not have decided at import time that it is
    # missing: none of them imports it at all.
    stack = "|".join(daemon_loop.MODEL_STACK)
    pattern = re.compile(rf"^\s*(import|from)\s+({stack})\b", re.MULTILINE)
    probing = [f for f in late_files if f and pattern.search(Path(f).read_text(errors="replace"))]
    assert probing == []
