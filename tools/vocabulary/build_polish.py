#!/usr/bin/env python3
"""Write the Polish word lists from the hand-curated TSV sources.

Sources (tab-separated, UTF-8, first line is a header):

* tools/vocabulary/pl_adverbs.tsv     adverb, offensive
* tools/vocabulary/pl_adjectives.tsv  masculine, feminine, neuter,
                                      masculine-personal, non-masculine-personal,
                                      offensive
  (one row per adjective, all five agreeing forms written out; the
  non-masculine-personal plural equals the neuter singular for every
  Polish adjective, the script checks that)
* tools/vocabulary/pl_nouns.tsv       noun, number, gender, theme, offensive

`offensive` is 0 or 1. Output goes to
crates/infrastructure/vocabularies/pl/{offensiveness}/{number}/{gender}/{theme}/{pos}s.txt,
sorted and deduplicated; every other *.txt under vocabularies/pl/ is removed
so that the tree always mirrors the sources. Standard library only.
"""

from __future__ import annotations

import csv
import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = REPO / "crates" / "infrastructure" / "vocabularies" / "pl"

ENTRY_RE = re.compile(r"^[^\W\d_]+( [^\W\d_]+)*$")
MAX_LEN = 40

# Buckets a noun (and so an agreeing adjective) may live in.
SINGULAR = ("masculine", "feminine", "neuter")
PLURAL = ("masculine-personal", "non-masculine-personal")
BUCKETS = [("singular", g) for g in SINGULAR] + [("plural", g) for g in PLURAL]
THEMES = {
    "none": set(BUCKETS),
    "proper-names": set(BUCKETS),
    "politicians": {("singular", "masculine"), ("singular", "feminine")},
}
ADJ_COLUMNS = [
    ("singular", "masculine"),
    ("singular", "feminine"),
    ("singular", "neuter"),
    ("plural", "masculine-personal"),
    ("plural", "non-masculine-personal"),
]

errors: list[str] = []


def err(src: str, line: int, msg: str) -> None:
    errors.append(f"{src}:{line}: {msg}")


def read_tsv(name: str, columns: int):
    path = HERE / name
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    for i, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0]):
            err(name, i, "blank line")
            continue
        if len(row) != columns:
            err(name, i, f"expected {columns} columns, got {len(row)}")
            continue
        yield i, [c for c in row]


def check_entry(src: str, line: int, word: str) -> bool:
    if not ENTRY_RE.match(word):
        err(src, line, f"invalid entry {word!r} (letters and single inner spaces only)")
        return False
    if len(word) > MAX_LEN:
        err(src, line, f"entry {word!r} longer than {MAX_LEN} characters")
        return False
    return True


def flag(src: str, line: int, value: str) -> str | None:
    if value not in ("0", "1"):
        err(src, line, f"offensive flag must be 0 or 1, got {value!r}")
        return None
    return "offensive" if value == "1" else "non-offensive"


def main() -> int:
    # path relative to OUT -> set of entries
    files: dict[Path, set[str]] = defaultdict(set)

    src = "pl_adverbs.tsv"
    for line, (word, off) in read_tsv(src, 2):
        o = flag(src, line, off)
        if o and check_entry(src, line, word):
            files[Path(o, "none", "none", "none", "adverbs.txt")].add(word)

    src = "pl_adjectives.tsv"
    for line, row in read_tsv(src, 6):
        o = flag(src, line, row[5])
        forms = row[:5]
        if forms[2] != forms[4]:
            err(src, line, f"neuter {forms[2]!r} differs from non-masculine-personal {forms[4]!r}")
        if o is None or not all(check_entry(src, line, f) for f in forms):
            continue
        for (number, gender), form in zip(ADJ_COLUMNS, forms):
            files[Path(o, number, gender, "none", "adjectives.txt")].add(form)

    src = "pl_nouns.tsv"
    for line, (word, number, gender, theme, off) in read_tsv(src, 5):
        o = flag(src, line, off)
        if theme not in THEMES:
            err(src, line, f"unknown theme {theme!r}")
            continue
        if (number, gender) not in THEMES[theme]:
            err(src, line, f"{number}/{gender} is not a bucket of theme {theme!r}")
            continue
        if theme != "none" and o == "offensive":
            err(src, line, f"theme {theme!r} nouns are never offensive")
            continue
        if o and check_entry(src, line, word):
            files[Path(o, number, gender, theme, "nouns.txt")].add(word)

    # A word must not be both offensive and non-offensive in the same slot.
    for rel, words in files.items():
        if rel.parts[0] == "offensive":
            clean = files.get(Path("non-offensive", *rel.parts[1:]), set())
            for w in sorted(words & clean):
                errors.append(f"{rel}: {w!r} is both offensive and non-offensive")

    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"{len(errors)} error(s); nothing written", file=sys.stderr)
        return 1

    OUT.mkdir(parents=True, exist_ok=True)
    wanted = {OUT / rel for rel in files}
    for old in OUT.rglob("*.txt"):
        if old not in wanted:
            old.unlink()
    for d in sorted((p for p in OUT.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    for rel in sorted(files):
        path = OUT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("".join(w + "\n" for w in sorted(files[rel])))
        print(f"{len(files[rel]):6d}  pl/{rel.as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
