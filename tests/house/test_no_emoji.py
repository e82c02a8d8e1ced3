"""No emoji in what the app shows: where no emoji font is installed they render as empty boxes. Icons are
Material icons (``:material/name:``), and table cells say words."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")


def _shown_files() -> list[Path]:
    files = [*sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py", ROOT / "web.py",
             *sorted((ROOT / "core").rglob("*.py"))]
    return [f for f in files if f.exists()]


def emoji_in(source: str, name: str) -> list[str]:
    """``name:line: text`` for every string literal of ``source`` that holds an emoji code point."""
    lines, hits = source.splitlines(), set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and EMOJI.search(tok.string):
            hits |= {tok.start[0] + i for i, part in enumerate(tok.string.splitlines()) if EMOJI.search(part)}
    return [f"{name}:{n}: {lines[n - 1].strip()}" for n in sorted(hits)]


def test_no_string_shown_to_people_holds_an_emoji() -> None:
    found = [hit for f in _shown_files() for hit in emoji_in(f.read_text(encoding="utf-8"),
                                                             f.relative_to(ROOT).as_posix())]
    assert not found, "emoji render as empty boxes without an emoji font; use :material/name: icons or words:\n" \
        + "\n".join(found)


def test_the_scan_names_file_and_line_of_each_emoji() -> None:
    source = ('x = 1  # \u2705 in a comment is not shown\nst.success("done", icon="\u2705")\n'
              'y = f"""a\n\u26a0\ufe0f b"""\nz = "plain \u2192 arrow"\n')
    assert emoji_in(source, "pages/x.py") == ['pages/x.py:2: st.success("done", icon="\u2705")',
                                              'pages/x.py:4: \u26a0\ufe0f b"""']


def test_the_scan_covers_pages_app_web_and_core() -> None:
    names = {f.relative_to(ROOT).as_posix() for f in _shown_files()}
    assert {"app.py", "web.py", "pages/decide.py", "pages/_ui.py", "core/decision/record.py"} <= names
