"""Citation parsing and sentence verification (rag/answering/verify.py) on fixed strings, adversarial ones too."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answering.verify import (
    SUPPORT_THRESHOLD,
    check_sentence,
    parse_citations,
    says_not_in_passages,
    split_answer,
    starts_with_refusal,
    verify,
)

PASSAGES = {
    1: "Reuters spoke to five current and former Russian officials about a possible freeze on the front lines.",
    2: "A draft agreement was nearly approved in April 2022 after talks in Istanbul.",
    3: "Trump's communications director, Stephen Chang, did not respond to a request for comment.",
    4: "The Kremlin said negotiations with Washington would continue next week.",
    5: "Biden allowed Ukraine to use U.S. ATACMS missiles for strikes deep into Russia.",
}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Chang [3].", [3]),
        ("Chang [3, 1].", [3, 1]),
        ("Chang [3][1] and [ 2 ].", [3, 1, 2]),
        ("Chang [Passage 3].", [3]),
        ('The memo was titled "[1] Draft" [2].', [2]),
        ("He wrote “see [4]” in the margin [5].", [5]),
        ("No markers here.", []),
        ("Chang [12].", [12]),
        ("A list [a] and a year [2022 is open.", []),
    ],
)
def test_parse_citations(text, expected):
    assert parse_citations(text) == expected


def test_supported_sentences_are_kept_as_written():
    v = verify("Stephen Chang is Trump's communications director [3]. ATACMS missiles were allowed [5].", PASSAGES)
    assert v.unsupported == 0 and v.citations == [3, 5]
    assert v.text == "Stephen Chang is Trump's communications director [3]. ATACMS missiles were allowed [5]."


def test_citation_of_a_passage_that_does_not_exist_is_unsupported():
    v = verify("Stephen Chang is the communications director [12].", PASSAGES)
    assert v.text == "" and v.unsupported == 1 and v.invalid_citations == 1
    assert v.sentences[0].reason == "cites no returned passage" and v.recited == 0


def test_twelve_in_a_five_passage_answer_is_removed_but_a_valid_citation_beside_it_stays():
    v = verify("Stephen Chang is the communications director [3, 12]. Istanbul talks [12][2].", PASSAGES)
    assert v.text == "Stephen Chang is the communications director [3]. Istanbul talks [2]."
    assert v.citations == [2, 3] and v.invalid_citations == 2 and v.unsupported == 0
    assert "12" not in v.text


def test_sentence_without_a_citation_is_dropped_even_when_true():
    v = verify("Stephen Chang is the communications director. ATACMS missiles were allowed [5].", PASSAGES)
    assert v.text == "ATACMS missiles were allowed [5]." and v.unsupported == 1
    assert v.sentences[0].reason == "cites no passage"


def test_quoted_marker_is_text_not_a_citation():
    v = verify('The footnote read "[3] Stephen Chang".', PASSAGES)
    assert v.sentences[0].cited == () and not v.sentences[0].supported
    kept = verify('Stephen Chang, the communications director, wrote "[1] notes" [3].', PASSAGES)
    assert kept.citations == [3] and '"[1] notes"' in kept.text


def test_marker_after_the_full_stop_belongs_to_the_sentence_before():
    assert split_answer("Chang is the director. [3] ATACMS were allowed. [5]") == [
        "Chang is the director. [3]", "ATACMS were allowed. [5]",
    ]
    v = verify("Chang is the communications director. [3] ATACMS missiles were allowed. [5]", PASSAGES)
    assert v.unsupported == 0 and v.citations == [3, 5]


def test_citing_the_wrong_passage_is_unsupported_without_re_citing():
    v = verify("Reuters spoke to the communications director [2].", PASSAGES, recite=False)
    assert v.unsupported == 1 and "content words" in v.sentences[0].reason


def test_a_number_the_passage_lacks_fails_even_with_high_overlap():
    v = verify("A draft agreement was nearly approved in April 2023 after talks in Istanbul [2].", PASSAGES)
    assert not v.sentences[0].supported and v.sentences[0].missing_numbers == ("2023",)


def test_number_words_match_digits():
    assert verify("Reuters spoke to 5 Russian officials [1].", PASSAGES).unsupported == 0
    assert verify("Reuters spoke to seven Russian officials [1].", PASSAGES).unsupported == 1


def test_stemming_accepts_paraphrase():
    v = verify("Negotiating with Washington continues, the Kremlin says [4].", PASSAGES)
    assert v.unsupported == 0


def test_threshold_boundary():
    # 3 of 5 content stems in the passage (60%) passes; 2 of 5 (40%) does not.
    passages = {1: "alpha bravo charlie"}
    assert SUPPORT_THRESHOLD == 0.6
    assert verify("alpha bravo charlie delta echo [1].", passages).unsupported == 0
    assert verify("alpha bravo delta echo foxtrot [1].", passages).unsupported == 1


def test_sentence_with_nothing_to_check_is_unsupported():
    assert verify("Yes [1].", PASSAGES).unsupported == 1
    assert verify("", PASSAGES).sentences == ()


def test_list_items_and_answer_prefix_are_stripped():
    v = verify("Answer: Stephen Chang [Passage 3]\n- ATACMS missiles [5]\n1. Istanbul talks [2]", PASSAGES)
    assert v.text == "Stephen Chang [3] ATACMS missiles [5] Istanbul talks [2]" and v.unsupported == 0


def test_refusals_are_recognised():
    assert starts_with_refusal("NOT IN PASSAGES") and starts_with_refusal(" not in passages.")
    assert says_not_in_passages("The passages do not mention how many tanks Germany sent.")
    assert says_not_in_passages("There is no information about that.")
    assert not says_not_in_passages("Stephen Chang is the communications director [3].")
    assert not starts_with_refusal("Stephen Chang [3]. NOT IN PASSAGES")


_pieces = st.sampled_from([
    "Stephen Chang is the communications director", "ATACMS missiles", "the moon is cheese", "[3]", "[12]",
    "[3, 12]", '"[1]"', ".", " ", "\n", "- ", "five officials", "2022", "[Passage 2]", "“[4]”",
])


@settings(max_examples=200, deadline=None)
@given(st.lists(_pieces, max_size=20).map("".join))
def test_shown_text_only_cites_returned_passages(answer):
    v = verify(answer, PASSAGES)
    assert set(parse_citations(v.text)) <= set(PASSAGES)
    assert v.citations == sorted(set(parse_citations(v.text)))
    assert len(v.kept) + v.unsupported == len(v.sentences)
    # each kept sentence, as shown, passes the check again as it stands
    for kept in v.kept:
        assert check_sentence(kept.shown, PASSAGES, recite=False).supported, kept


def test_wrong_neighbour_citation_is_recited_to_the_supporting_passage():
    v = verify("Stephen Chang is Trump's communications director [2].", PASSAGES)
    assert v.text == "Stephen Chang is Trump's communications director [3]." and v.citations == [3]
    assert v.recited == 1 and v.unsupported == 0 and v.sentences[0].recited_from == (2,)
    assert verify("Stephen Chang is Trump's communications director [2].", PASSAGES, recite=False).unsupported == 1


def test_uncited_or_invalidly_cited_sentences_are_never_recited():
    assert verify("Stephen Chang is Trump's communications director.", PASSAGES).unsupported == 1
    assert verify("Stephen Chang is Trump's communications director [9].", PASSAGES).unsupported == 1
    assert verify("The moon is made of green cheese [2].", PASSAGES).unsupported == 1


def test_a_name_the_cited_passage_lacks_fails():
    v = verify("Steve Witkoff is Trump's communications director [3].", PASSAGES)
    assert v.unsupported == 1 and "names what the cited passages do not: witkoff" in v.sentences[0].reason
    assert verify("Stephen Chang is Trump's communications director [3].", PASSAGES).unsupported == 0
