"""Which pimsync variant is a channel's item? Pure functions, no database.

Order of evidence (docs/onboarding.md):

1. **SKU**: the channel SKU equals a pimsync SKU exactly (surrounding spaces aside).
2. **Barcode**: the GTIN equals one variant's, compared as GTIN-14 (a 12-digit UPC
   and the 13-digit EAN with a leading 0 are the same code).
3. **Title**: only *proposed*: the normalised words of the product title, the
   variant title and the option values, compared as sets (order, case, accents,
   punctuation, plural "s" and spacing do not matter; "Medium" is "M"). The score
   is their Jaccard similarity, halved when the options disagree (a variant's
   option values must all appear on the item, and the item's on the variant).
   A proposal needs ``threshold`` (default 0.75); a runner-up within ``tie`` of
   the best makes it a conflict.

Then claims are counted: a variant claimed by several items is a conflict for
each of them, except that an exact SKU match keeps its variant (the others are
the duplicates).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_THRESHOLD = 0.75
DEFAULT_TIE = 0.02
# The score is halved when the options disagree (a sibling of the right product).
OPTION_MISMATCH_FACTOR = 0.5
# Words in more variants than this do not pick candidates (they still count in the score).
COMMON_WORD_LIMIT = 200

# Spellings of the same option value, after lower-casing and de-punctuation.
SYNONYMS = {
    "extra small": "xs",
    "x small": "xs",
    "small": "s",
    "medium": "m",
    "med": "m",
    "large": "l",
    "extra large": "xl",
    "x large": "xl",
    "xx large": "xxl",
    "2xl": "xxl",
    "xxx large": "xxxl",
    "3xl": "xxxl",
    "grey": "gray",
    "colour": "color",
}
_SYNONYM_RE = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len)[::-1]) + r")\b"
)
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """Lower case, accents dropped, ``&`` as "and", punctuation as spaces, size
    and colour spellings unified, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    plain = _NOT_WORD.sub(" ", plain.replace("&", " and ")).strip()
    return _SYNONYM_RE.sub(lambda m: SYNONYMS[m.group(1)], plain)


def words(text: str) -> frozenset[str]:
    """The normalised words of ``text`` as a set, a plural "s" dropped ("socks" = "sock")."""
    found = set()
    for word in normalise(text).split():
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        found.add(word)
    return frozenset(found)


def gtin(code: str) -> str:
    """A barcode as GTIN-14 (digits only, zero-padded); "" when it is not one.

    UPC-A (12), EAN-13 (13), EAN-8 (8) and ISBN-13 are GTINs of one family: padded
    to 14 digits, a UPC and the EAN that adds a leading 0 become the same code."""
    digits = "".join(c for c in code if c.isdigit())
    if len(digits) not in (8, 12, 13, 14) or not digits.strip("0"):
        return ""
    return digits.zfill(14)


@dataclass(frozen=True)
class Candidate:
    """A pimsync variant as the matcher sees it."""

    id: int
    sku: str
    barcode: str
    text: str  # product title, variant title and option values
    option_values: Sequence[str] = ()


@dataclass(frozen=True)
class Item:
    """A channel item as the matcher sees it."""

    key: str
    sku: str
    barcode: str
    text: str  # product title, title and option values as the channel gives them
    option_values: Sequence[str] = ()


@dataclass
class Result:
    key: str
    status: str  # matched | proposed | conflict | unmatched
    match: str  # sku | barcode | title | none
    variant_id: int | None = None
    score: float | None = None
    candidates: list[int] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class _Indexed:
    candidate: Candidate
    words: frozenset[str]
    option_words: frozenset[str]


def similarity(
    item_words: frozenset[str],
    item_option_words: frozenset[str],
    variant_words: frozenset[str],
    variant_option_words: frozenset[str],
) -> float:
    """Jaccard similarity of the two word sets, halved unless each side's option
    values appear on the other."""
    if not item_words or not variant_words:
        return 0.0
    score = len(item_words & variant_words) / len(item_words | variant_words)
    agree = variant_option_words <= item_words and item_option_words <= variant_words
    return score if agree else score * OPTION_MISMATCH_FACTOR


class Matcher:
    """Indexes pimsync's variants once; ``match`` classifies a channel's items."""

    def __init__(
        self,
        candidates: Iterable[Candidate],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        tie: float = DEFAULT_TIE,
    ) -> None:
        self.threshold = threshold
        self.tie = tie
        self._by_sku: dict[str, int] = {}
        self._by_gtin: dict[str, list[int]] = defaultdict(list)
        self._indexed: dict[int, _Indexed] = {}
        self._by_word: dict[str, list[int]] = defaultdict(list)
        for candidate in candidates:
            self._by_sku[candidate.sku.strip()] = candidate.id
            code = gtin(candidate.barcode)
            if code:
                self._by_gtin[code].append(candidate.id)
            option_words = frozenset().union(*(words(v) for v in candidate.option_values))
            indexed = _Indexed(candidate, words(candidate.text) | option_words, option_words)
            self._indexed[candidate.id] = indexed
            for word in indexed.words:
                self._by_word[word].append(candidate.id)

    def match(self, items: Sequence[Item]) -> list[Result]:
        """One result per item, in order (see the module docstring)."""
        results = [self._match_one(item) for item in items]
        self._resolve_claims(results)
        return results

    def _match_one(self, item: Item) -> Result:
        sku = item.sku.strip()
        if sku and sku in self._by_sku:
            return Result(item.key, "matched", "sku", self._by_sku[sku])
        code = gtin(item.barcode)
        found = self._by_gtin.get(code, []) if code else []
        if len(found) == 1:
            return Result(item.key, "matched", "barcode", found[0])
        if len(found) > 1:
            return Result(
                item.key,
                "conflict",
                "barcode",
                candidates=sorted(found),
                note=f"barcode {item.barcode} belongs to {len(found)} pimsync variants",
            )
        return self._propose(item)

    def _propose(self, item: Item) -> Result:
        option_words = frozenset().union(*(words(v) for v in item.option_values))
        item_words = words(item.text) | option_words
        scored = sorted(
            (
                (
                    similarity(
                        item_words,
                        option_words,
                        self._indexed[i].words,
                        self._indexed[i].option_words,
                    ),
                    i,
                )
                for i in self._candidate_ids(item_words)
            ),
            key=lambda pair: (-pair[0], pair[1]),
        )
        if not scored or scored[0][0] < self.threshold:
            best = scored[0][0] if scored else 0.0
            return Result(item.key, "unmatched", "none", score=round(best, 3) if scored else None)
        best_score, best_id = scored[0]
        ties = [i for s, i in scored if s >= self.threshold and best_score - s <= self.tie]
        if len(ties) > 1:
            return Result(
                item.key,
                "conflict",
                "title",
                score=round(best_score, 3),
                candidates=ties,
                note=f"{len(ties)} pimsync variants fit the title equally well",
            )
        return Result(item.key, "proposed", "title", best_id, round(best_score, 3), [best_id])

    def _candidate_ids(self, item_words: frozenset[str]) -> set[int]:
        """Variants sharing a telling word with the item (the rarest words, at most
        COMMON_WORD_LIMIT variants each; the rarest one even when it is common)."""
        present = sorted((len(self._by_word[w]), w) for w in item_words if w in self._by_word)
        ids: set[int] = set()
        for count, word in present:
            if count > COMMON_WORD_LIMIT and ids:
                break
            ids.update(self._by_word[word])
        return ids

    def _resolve_claims(self, results: list[Result]) -> None:
        claims: dict[int, list[Result]] = defaultdict(list)
        for result in results:
            if result.status in ("matched", "proposed") and result.variant_id is not None:
                claims[result.variant_id].append(result)
        for variant_id, claimers in claims.items():
            if len(claimers) < 2:
                continue
            by_sku = [r for r in claimers if r.match == "sku"]
            keys = ", ".join(r.key for r in claimers)
            keeper = by_sku[0] if len(by_sku) == 1 else None
            for result in claimers:
                if result is keeper:
                    continue
                result.status = "conflict"
                result.variant_id = None  # a person chooses
                result.candidates = [variant_id]
                result.note = (
                    f"its variant is also claimed by the item with the same SKU ({keeper.key})"
                    if keeper is not None
                    else f"one pimsync variant claimed by {len(claimers)} items ({keys})"
                )[:255]


def counts(results: Iterable[Result]) -> Mapping[str, int]:
    """Results per status."""
    return dict(Counter(r.status for r in results))
