"""The matcher: normalising, barcodes as GTINs, and the order of evidence
(SKU, barcode, proposed title) with conflicts. Pure: no database."""

from __future__ import annotations

import pytest

from channels_app.onboarding.matching import (
    Candidate,
    Item,
    Matcher,
    gtin,
    normalise,
    similarity,
    words,
)


def test_normalise_ignores_case_accents_punctuation_and_spacing() -> None:
    assert normalise("  Crème-Brûlée  MUG (Large) & Spoon!") == "creme brulee mug l and spoon"


def test_words_are_a_set_without_plural_s() -> None:
    assert words("Trail Socks, trail SOCK") == frozenset({"trail", "sock"})
    assert words("Glass") == frozenset({"glass"})  # "ss" is not a plural


def test_sizes_and_colours_are_spelt_one_way() -> None:
    assert words("Medium / Grey") == words("M gray")
    assert words("Extra Large") == words("XL")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("012345678905", "00012345678905"),  # UPC-A
        ("0012345678905", "00012345678905"),  # the same as EAN-13
        ("4006381333931", "04006381333931"),
        ("978-3-16-148410-0", "09783161484100"),  # ISBN-13 with hyphens
        ("12345", ""),
        ("000000000000", ""),
        ("", ""),
    ],
)
def test_barcodes_compare_as_gtin_14(code: str, expected: str) -> None:
    assert gtin(code) == expected


def test_option_order_does_not_matter_but_a_wrong_option_halves_the_score() -> None:
    variant = words("Trail Sock M Blue")
    same = similarity(words("Trail Sock Blue M"), frozenset(), variant, words("M Blue"))
    sibling = similarity(words("Trail Sock L Blue"), frozenset(), variant, words("M Blue"))

    assert same == 1.0
    assert sibling == pytest.approx(0.6 * 0.5)  # 3 of 5 words, and the option M is missing


def catalog() -> list[Candidate]:
    return [
        Candidate(1, "SOCK-M", "4006381333931", "Trail Sock", ("M",)),
        Candidate(2, "SOCK-L", "4006381333948", "Trail Sock", ("L",)),
        Candidate(3, "MUG", "", "Enamel Camp Mug", ()),
        Candidate(4, "TEE-A", "", "Organic Tee", ("S",)),
        Candidate(5, "TEE-B", "", "Organic Tee", ("S",)),  # a duplicate in pimsync
        Candidate(6, "CAP-1", "0012345678905", "Cap", ()),
        Candidate(7, "CAP-2", "012345678905", "Cap", ()),  # the same GTIN twice
    ]


def match_one(item: Item) -> tuple[str, str, int | None]:
    (result,) = Matcher(catalog()).match([item])
    return result.status, result.match, result.variant_id


def test_sku_first() -> None:
    assert match_one(Item("a", " SOCK-L ", "4006381333931", "anything")) == ("matched", "sku", 2)


def test_barcode_second_as_gtin() -> None:
    assert match_one(Item("a", "SHOP-77", "04006381333948", "x")) == ("matched", "barcode", 2)


def test_title_is_only_proposed() -> None:
    item = Item("a", "WC-1", "", "enamel camp mugs")
    assert match_one(item) == ("proposed", "title", 3)


def test_title_with_options_in_any_order() -> None:
    item = Item("a", "", "", "Trail Sock", ("M",))
    assert match_one(item) == ("proposed", "title", 1)


def test_a_size_pimsync_does_not_have_stays_unmatched() -> None:
    item = Item("a", "", "", "Trail Sock", ("XXL",))
    assert match_one(item) == ("unmatched", "none", None)


def test_two_equally_good_titles_are_a_conflict() -> None:
    (result,) = Matcher(catalog()).match([Item("a", "", "", "organic tee S")])

    assert (result.status, result.candidates) == ("conflict", [4, 5])


def test_a_barcode_of_two_variants_is_a_conflict() -> None:
    (result,) = Matcher(catalog()).match([Item("a", "X", "012345678905", "cap")])

    assert (result.status, result.match, result.candidates) == ("conflict", "barcode", [6, 7])


def test_a_variant_claimed_twice_is_a_conflict_for_both() -> None:
    results = Matcher(catalog()).match(
        [Item("a", "A-1", "4006381333931", "x"), Item("b", "B-1", "4006381333931", "y")]
    )

    assert [(r.status, r.candidates) for r in results] == [("conflict", [1]), ("conflict", [1])]


def test_the_exact_sku_keeps_its_variant_against_a_duplicate() -> None:
    results = Matcher(catalog()).match(
        [Item("a", "SOCK-M", "", "x"), Item("b", "OLD-SOCK", "4006381333931", "y")]
    )

    assert [(r.status, r.variant_id) for r in results] == [("matched", 1), ("conflict", None)]
    assert "same SKU" in results[1].note


def test_nothing_alike_is_unmatched() -> None:
    assert match_one(Item("a", "Z-9", "", "Titanium Spork")) == ("unmatched", "none", None)
