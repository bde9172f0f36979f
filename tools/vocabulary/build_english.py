#!/usr/bin/env python3
"""Regenerate the English non-offensive theme-`none` word lists from WordNet 3.0.

Reads the WordNet database installed by Debian's `wordnet-base` package
(/usr/share/wordnet, override with --wordnet-dir or $WNSEARCHDIR) and writes

    crates/infrastructure/vocabularies/en/non-offensive/none/none/none/adverbs.txt
    crates/infrastructure/vocabularies/en/non-offensive/none/none/none/adjectives.txt
    crates/infrastructure/vocabularies/en/non-offensive/none/none/none/nouns.txt

A lemma is kept when all of the following hold:

* it is a single plain lower-case ASCII word (`^[a-z]+$`), 3..15 characters;
* it is "common": at least one of its senses is tagged in the WordNet
  semantic concordance (tagsense_cnt > 0 in the index file), which drops
  most of the obscure taxonomy and jargon entries;
* its most frequent sense is written in lower case in the data file
  (drops proper nouns and nationality/religion adjectives such as
  "French" or "Jewish" that the lower-cased index hides);
* no sense carries one of the usage labels in BLOCKED_USAGE_DOMAINS
  (ethnic slur, disparagement, obscenity);
* it is not below one of BLOCKED_ROOTS in the hypernym tree (any sense
  or first sense, see below);
* it is not in tools/vocabulary/blocklist.txt (one word a line, applying
  to every part of speech, or `noun:word` / `adj:word` / `adv:word` for
  one part of speech only; `#` starts a comment line);
* it is not in any English *offensive* list (so a phrase never gets a
  second, accidental swear word).

Standard library only; output is sorted and deterministic.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VOCAB = REPO / "crates" / "infrastructure" / "vocabularies"
OUT_DIR = VOCAB / "en" / "non-offensive" / "none" / "none" / "none"
OFFENSIVE_DIR = VOCAB / "en" / "offensive" / "none" / "none" / "none"
BLOCKLIST = HERE / "blocklist.txt"

WORD_RE = re.compile(r"^[a-z]+$")
MIN_LEN, MAX_LEN = 3, 15

# (index file, data file, output file)
PARTS = [
    ("adv", "adverbs.txt"),
    ("adj", "adjectives.txt"),
    ("noun", "nouns.txt"),
]

# Usage-domain labels (";u" pointers) that disqualify a lemma if ANY of its
# senses carries them. Given as (noun lemma, sense number).
BLOCKED_USAGE_DOMAINS = [
    ("ethnic_slur", 1),
    ("disparagement", 1),
    ("obscenity", 2),  # "obscenity, smut, vulgarism, filth, dirty word"
]

# Hypernym roots. A noun lemma is dropped if ANY sense in which it is written
# in lower case (mode "any"; so the tribe "Crow" does not block the bird) or
# its FIRST (most frequent, mode "first") sense lies at or below the root.
BLOCKED_ROOTS = [
    (("person_of_color", 1), "any"),
    (("homosexual", 1), "any"),
    (("bisexual", 1), "any"),
    (("transsexual", 1), "any"),
    (("transsexual", 2), "any"),
    (("prostitute", 1), "any"),
    (("sex_organ", 1), "first"),
    (("genitalia", 1), "first"),
    (("sex_offender", 1), "any"),
    (("pervert", 1), "any"),
    (("sexual_activity", 1), "first"),
    (("disease", 1), "first"),
    (("mental_illness", 1), "first"),
    (("mental_disorder", 1), "first"),
    (("disability", 1), "first"),
    (("religious_person", 1), "first"),
    (("killing", 2), "first"),
    (("dead_person", 1), "first"),
    (("corpse", 1), "first"),
]


def read_index(wn: Path, pos: str) -> dict[str, tuple[int, list[str]]]:
    """lemma -> (tagsense_cnt, [synset offsets, most frequent first])"""
    out = {}
    with open(wn / f"index.{pos}", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):  # licence header
                continue
            p = line.split()
            p_cnt = int(p[3])
            tagsense = int(p[4 + p_cnt + 1])
            offsets = p[4 + p_cnt + 2:]
            out[p[0]] = (tagsense, offsets)
    return out


def read_data(wn: Path, pos: str) -> dict[str, tuple[list[str], list[tuple[str, str, str]]]]:
    """offset -> ([word forms as written], [(pointer symbol, target offset, target pos)])"""
    out = {}
    with open(wn / f"data.{pos}", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):
                continue
            p = line.split(" | ")[0].split()
            w_cnt = int(p[3], 16)
            words = [re.sub(r"\(.*\)$", "", p[4 + 2 * i]) for i in range(w_cnt)]
            i = 4 + 2 * w_cnt
            ptr_cnt = int(p[i])
            i += 1
            ptrs = []
            for _ in range(ptr_cnt):
                ptrs.append((p[i], p[i + 1], p[i + 2]))
                i += 4
            out[p[0]] = (words, ptrs)
    return out


def read_list(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with open(path, encoding="utf-8") as fh:
        return {
            line.strip().lower()
            for line in fh
            if line.strip() and not line.lstrip().startswith("#")
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--wordnet-dir",
        default=os.environ.get("WNSEARCHDIR", "/usr/share/wordnet"),
        help="directory holding index.* and data.* (default: %(default)s)",
    )
    ap.add_argument(
        "--explain",
        action="store_true",
        help="print every dropped lemma with the reason to stderr",
    )
    args = ap.parse_args()
    wn = Path(args.wordnet_dir)
    if not (wn / "index.noun").exists():
        print(
            f"WordNet not found in {wn}; install it with: apt-get install wordnet-base",
            file=sys.stderr,
        )
        return 1

    data = {pos: read_data(wn, pos) for pos in ("noun", "verb", "adj", "adv")}
    index = {pos: read_index(wn, pos) for pos, _ in PARTS}

    def sense(lemma: str, n: int) -> str:
        return index["noun"][lemma][1][n - 1]

    # Synsets labelled with a blocked usage domain, any part of speech.
    usage_targets = {sense(l, n) for l, n in BLOCKED_USAGE_DOMAINS}
    usage_blocked: set[tuple[str, str]] = set()
    for pos, synsets in data.items():
        for off, (_, ptrs) in synsets.items():
            if any(sym == ";u" and t in usage_targets and tp == "n" for sym, t, tp in ptrs):
                usage_blocked.add((pos, off))

    # Hyponym closure of the blocked roots.
    hyponyms = defaultdict(list)
    for off, (_, ptrs) in data["noun"].items():
        for sym, t, tp in ptrs:
            if sym in ("~", "~i") and tp == "n":
                hyponyms[off].append(t)

    def closure(root: str) -> set[str]:
        seen, stack = set(), [root]
        while stack:
            o = stack.pop()
            if o not in seen:
                seen.add(o)
                stack.extend(hyponyms[o])
        return seen

    root_any: set[str] = set()
    root_first: set[str] = set()
    for (lemma, n), mode in BLOCKED_ROOTS:
        (root_any if mode == "any" else root_first).update(closure(sense(lemma, n)))

    blocklist = read_list(BLOCKLIST)
    offensive = set()
    for _, fname in PARTS:
        offensive.update(read_list(OFFENSIVE_DIR / fname))

    dropped = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for pos, fname in PARTS:
        kept = []
        for lemma, (tagsense, offsets) in index[pos].items():
            if not WORD_RE.match(lemma) or not MIN_LEN <= len(lemma) <= MAX_LEN:
                continue
            reason = None
            if tagsense == 0:
                reason = "rare"
            elif lemma not in data[pos][offsets[0]][0]:
                reason = "capitalised"
            elif any((pos, o) in usage_blocked for o in offsets):
                reason = "usage-domain"
            elif pos == "noun" and any(
                o in root_any and lemma in data[pos][o][0] for o in offsets
            ):
                reason = "hypernym(any)"
            elif pos == "noun" and offsets[0] in root_first:
                reason = "hypernym(first)"
            elif lemma in blocklist or f"{pos}:{lemma}" in blocklist:
                reason = "blocklist"
            elif lemma in offensive:
                reason = "offensive-list"
            if reason:
                if reason != "rare":
                    dropped.append((pos, reason, lemma))
                continue
            kept.append(lemma)
        kept = sorted(set(kept))
        with open(OUT_DIR / fname, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("".join(w + "\n" for w in kept))
        print(f"{fname}: {len(kept)} words -> {(OUT_DIR / fname).relative_to(REPO)}")

    if args.explain:
        for pos, reason, lemma in sorted(dropped):
            print(f"{pos}\t{reason}\t{lemma}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
