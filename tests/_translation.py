"""Checks of a translation catalogue (``.po``), shared by tests/test_translation.py and translators:

    python tests/_translation.py locales/zh_CN/LC_MESSAGES/book/rnn/01-recurrence.po [...]

prints every problem: a message without a translation or marked fuzzy, and a translation that
changed what must stay as it is: inline formulas (``$...$``), inline code, and the targets of MyST
roles (``{cite}``, ``{eq}``, ``{numref}``, ``{glue:text}``, the page of a ``{doc}`` link, ...).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from babel.messages.pofile import read_po

MATH = re.compile(r"\$\$.+?\$\$|\$[^$]+\$", re.DOTALL)
ROLE = re.compile(r"\{([\w:-]+)\}`([^`]*)`")
CODE = re.compile(r"(?<![}`])`([^`]+)`")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Roles whose whole content is a key: translating it would break the link or the value.
KEY_ROLES = ("cite", "cite:p", "cite:t", "eq", "numref", "ref", "glue", "glue:text", "glue:any",
             "glue:md", "math", "download", "doc", "term", "abbr")


def _role_targets(text: str) -> Counter:
    targets = Counter()
    for name, content in ROLE.findall(text):
        explicit = re.search(r"<([^<>]+)>\s*$", content)
        if explicit and name not in ("math", "glue:text", "glue"):
            targets[(name, explicit.group(1))] += 1  # the title before <target> may be translated
        elif name in KEY_ROLES:
            targets[(name, content)] += 1
        else:
            targets[(name, "")] += 1
    return targets


def message_problems(msgid: str, msgstr: str) -> list[str]:
    """What is wrong with ``msgstr`` as the translation of ``msgid`` (empty list: nothing)."""
    problems = []
    if not msgstr.strip():
        return ["no translation"]
    if Counter(MATH.findall(msgid)) != Counter(MATH.findall(msgstr)):
        missing = Counter(MATH.findall(msgid)) - Counter(MATH.findall(msgstr))
        problems.append(f"formulas changed (e.g. {list(missing)[:2]})")
    if _role_targets(msgid) != _role_targets(msgstr):
        missing = _role_targets(msgid) - _role_targets(msgstr)
        extra = _role_targets(msgstr) - _role_targets(msgid)
        problems.append(f"roles changed: missing {list(missing)[:3]}, extra {list(extra)[:3]}")
    plain_id, plain_str = ROLE.sub("", MATH.sub("", msgid)), ROLE.sub("", MATH.sub("", msgstr))
    if Counter(CODE.findall(plain_id)) != Counter(CODE.findall(plain_str)):
        missing = Counter(CODE.findall(plain_id)) - Counter(CODE.findall(plain_str))
        problems.append(f"inline code changed (e.g. {list(missing)[:3]})")
    return problems


def catalogue_problems(path: Path) -> list[str]:
    """Every problem of the catalogue at ``path``, one line each, naming the message."""
    with open(path, "rb") as f:
        catalogue = read_po(f)
    problems = []
    for message in catalogue:
        if not message.id or not isinstance(message.id, str):
            continue
        where = f"{path.name}: {message.id[:60]!r}"
        if message.fuzzy:
            problems.append(f"{where}: marked fuzzy (the English changed; update the translation "
                            "and remove the fuzzy flag)")
            continue
        problems += [f"{where}: {p}" for p in message_problems(message.id, message.string)]
    return problems


def cjk_share(text: str) -> float:
    """The share of CJK characters among the letters of ``text`` (formulas and code removed)."""
    text = CODE.sub("", ROLE.sub("", MATH.sub("", text)))
    letters = [ch for ch in text if ch.isalpha()]
    return sum(bool(CJK.match(ch)) for ch in letters) / max(len(letters), 1)


if __name__ == "__main__":
    found = [p for arg in sys.argv[1:] for p in catalogue_problems(Path(arg))]
    print("\n".join(found) or "no problems")
    sys.exit(1 if found else 0)
