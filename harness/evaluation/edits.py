"""Character edits of one word, the typos of the robustness probes and of DeepWordBug's transformation (Gao et al.
2018, section 3.2: swap two adjacent characters, substitute, delete or insert one). Substitution takes a
neighbouring key on a QWERTY keyboard (Belinkov & Bisk 2018's "natural" keyboard typos) rather than any letter.
Letters only: MiniLM-L6 is uncased, so a change of case would be no change at all."""

from __future__ import annotations

import itertools
import random
import string

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
NEIGHBOURS = {
    key: "".join(
        _ROWS[r][c]
        for r in range(max(0, row - 1), min(len(_ROWS), row + 2))
        for c in (col - 1, col, col + 1)
        if 0 <= c < len(_ROWS[r]) and (r, c) != (row, col)
    )
    for row, keys in enumerate(_ROWS)
    for col, key in enumerate(keys)
}
EDITS = ("swap", "substitute", "delete", "insert")


def possible(word: str) -> tuple[str, ...]:
    """The edits that change ``word`` and leave a word: swapping needs two different adjacent characters,
    substituting a letter with keyboard neighbours, deleting at least two characters."""
    found = []
    if any(a != b for a, b in itertools.pairwise(word)):
        found.append("swap")
    if any(c.lower() in NEIGHBOURS for c in word):
        found.append("substitute")
    if len(word) > 1:
        found.append("delete")
    found.append("insert")
    return tuple(found)


def edit(word: str, kind: str, rng: random.Random) -> str:
    """``word`` with one edit of ``kind`` (one of ``possible(word)``) at a position drawn from ``rng``."""
    if kind == "swap":
        i = rng.choice([i for i in range(len(word) - 1) if word[i] != word[i + 1]])
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "substitute":
        i = rng.choice([i for i, c in enumerate(word) if c.lower() in NEIGHBOURS])
        new = rng.choice(NEIGHBOURS[word[i].lower()])
        return word[:i] + (new.upper() if word[i].isupper() else new) + word[i + 1 :]
    if kind == "delete":
        i = rng.randrange(len(word))
        return word[:i] + word[i + 1 :]
    i = rng.randrange(len(word) + 1)
    return word[:i] + rng.choice(string.ascii_lowercase) + word[i:]


def typo(word: str, rng: random.Random) -> str:
    """One edit of a kind drawn uniformly from those that apply to ``word``."""
    return edit(word, rng.choice(possible(word)), rng)
