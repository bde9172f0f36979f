#!/usr/bin/env python3
"""Check the vocabulary files and print the phrase-space size per language x theme.

A phrase is adverb + adjective + noun with exactly one offensive word:
with theme `none` the noun is offensive half of the time; otherwise (and
always for other themes) the adjective or the adverb is. Adverbs and
adjectives always come from theme `none`; nouns come from the requested
theme and are never offensive outside theme `none`. The adjective agrees
with the noun's number/gender bucket.

Phrase space for (language, theme) = sum over the buckets reachable for
the theme of
    [theme none only] adv_clean * adj_clean(b) * noun_offensive(b)
  + adv_clean * adj_offensive(b) * noun_clean(b, theme)
  + adv_offensive * adj_clean(b) * noun_clean(b, theme)

Also checks the format of every *.txt list (UTF-8, LF, sorted, unique, no
blank lines, letters with single inner spaces, at most 40 characters) and
that no list holds a word of its offensive counterpart.

Exits non-zero if a reachable list is missing or empty, a file is
malformed, or a threshold is not met. Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VOCAB = HERE.parent.parent / "crates" / "infrastructure" / "vocabularies"

ENTRY_RE = re.compile(r"^[^\W\d_]+( [^\W\d_]+)*$")
MAX_LEN = 40

THEMES = ("none", "proper-names", "politicians")
LANGUAGES = {
    # language -> theme -> list of (number, gender) buckets
    "en": {t: [("none", "none")] for t in THEMES},
    "pl": {
        "none": [
            ("singular", "masculine"),
            ("singular", "feminine"),
            ("singular", "neuter"),
            ("plural", "masculine-personal"),
            ("plural", "non-masculine-personal"),
        ],
        "proper-names": [
            ("singular", "masculine"),
            ("singular", "feminine"),
            ("singular", "neuter"),
            ("plural", "masculine-personal"),
            ("plural", "non-masculine-personal"),
        ],
        "politicians": [("singular", "masculine"), ("singular", "feminine")],
    },
}
ADVERB_BUCKET = {"en": ("none", "none"), "pl": ("none", "none")}
THRESHOLDS = {("en", "none"): 10**8}
DEFAULT_THRESHOLD = 10**6

problems: list[str] = []
_cache: dict[Path, list[str]] = {}


def load(path: Path) -> list[str]:
    """Read and validate one list; report problems, return its entries."""
    if path in _cache:
        return _cache[path]
    rel = path.relative_to(VOCAB)
    entries: list[str] = []
    if not path.exists():
        problems.append(f"{rel}: missing")
    else:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"{rel}: not UTF-8 ({e})")
            text = raw.decode("utf-8", "replace")
        if "\r" in text:
            problems.append(f"{rel}: CR characters (use LF line endings)")
        if text and not text.endswith("\n"):
            problems.append(f"{rel}: last line lacks a newline")
        entries = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
        for i, e in enumerate(entries, start=1):
            if not e:
                problems.append(f"{rel}:{i}: blank line")
            elif not ENTRY_RE.match(e):
                problems.append(f"{rel}:{i}: invalid entry {e!r}")
            elif len(e) > MAX_LEN:
                problems.append(f"{rel}:{i}: entry longer than {MAX_LEN}: {e!r}")
        if entries != sorted(set(entries)):
            problems.append(f"{rel}: not sorted and deduplicated")
        if not entries:
            problems.append(f"{rel}: empty")
    _cache[path] = entries
    return entries


def count(lang: str, off: str, number: str, gender: str, theme: str, pos: str) -> int:
    return len(load(VOCAB / lang / off / number / gender / theme / f"{pos}s.txt"))


def main() -> int:
    rows = []
    for lang, themes in LANGUAGES.items():
        an, ag = ADVERB_BUCKET[lang]
        adv_c = count(lang, "non-offensive", an, ag, "none", "adverb")
        adv_o = count(lang, "offensive", an, ag, "none", "adverb")
        for theme, buckets in themes.items():
            total = 0
            for number, gender in buckets:
                adj_c = count(lang, "non-offensive", number, gender, "none", "adjective")
                adj_o = count(lang, "offensive", number, gender, "none", "adjective")
                noun_c = count(lang, "non-offensive", number, gender, theme, "noun")
                if theme == "none":
                    noun_o = count(lang, "offensive", number, gender, "none", "noun")
                    total += adv_c * adj_c * noun_o
                total += adv_c * adj_o * noun_c + adv_o * adj_c * noun_c
            threshold = THRESHOLDS.get((lang, theme), DEFAULT_THRESHOLD)
            rows.append((lang, theme, total, threshold))

    # Every list on disk must be well formed, reachable or not, and a
    # non-offensive list must not share a word with its offensive twin.
    for path in sorted(VOCAB.rglob("*.txt")):
        if path.name.startswith("LICENSE"):
            continue
        entries = load(path)
        rel = path.relative_to(VOCAB).parts
        if len(rel) == 7 and rel[1] == "non-offensive":
            twin = VOCAB.joinpath(rel[0], "offensive", *rel[2:4], "none", rel[6])
            if twin.exists():
                both = sorted(set(entries) & set(load(twin)))
                if both:
                    problems.append(
                        f"{path.relative_to(VOCAB)}: also offensive: {', '.join(both[:10])}"
                    )

    print(f"{'language':<9} {'theme':<13} {'phrases':>18} {'threshold':>14}  ok")
    failed = False
    for lang, theme, total, threshold in rows:
        ok = total >= threshold
        failed |= not ok
        print(
            f"{lang:<9} {theme:<13} {total:>18,} {threshold:>14,}  "
            f"{'yes' if ok else 'NO'} ({total / threshold:.1f}x)"
        )
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
