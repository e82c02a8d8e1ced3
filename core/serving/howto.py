"""How a client reaches ``stillroom serve``: the exact command and a ``curl`` call, as the Rollout page and the
CLI print them. Shell-quoted, because a project's name is anyone's text."""

from __future__ import annotations

import json
import shlex

DEFAULT_PORT = 8700
TOKEN_VARIABLE = "STILLROOM_SERVE_TOKEN"


def serve_command(project_name: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> str:
    """The command that serves the project's shipped student behind its rollout stage."""
    where = "" if host == "127.0.0.1" else f" --host {shlex.quote(host)}"
    return f"stillroom serve {shlex.quote(project_name)}{where} --port {port}"


def curl_example(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, text: str = "My invoice was charged twice",
                 token: str | None = None) -> str:
    """One classify request with a bearer token (from the environment unless given: a token in a shell's
    history is a leaked token)."""
    bearer = token if token is not None else f"${TOKEN_VARIABLE}"
    body = json.dumps({"text": text}, ensure_ascii=False)
    return (f"curl -s http://{host}:{port}/v1/classify \\\n"
            f"  -H \"Authorization: Bearer {bearer}\" -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(body)}")
