"""Unit tests for eval/metrics.py against small hand-computed values."""

import math
import random

import numpy as np
import pytest

from eval.metrics import (
    abstention_rate,
    answer_in_answer,
    answer_in_passages,
    citation_support,
    citation_validity,
    contains,
    content_words,
    distinct_docs_at,
    evidence_found,
    evidence_recall_at,
    false_refusal_rate,
    first_hit_rank,
    hit_at,
    hits_by_key,
    mc_accuracy,
    mean,
    ndcg_at,
    normalize,
    nugget_recall,
    parse_citations,
    percentile,
    reciprocal_rank,
    refusal_accuracy,
    sentence_supported,
    split_sentences,
)

# --- normalize / contains -------------------------------------------------------------------


def test_normalize_quotes_dashes_whitespace_case():
    assert normalize("  Trump\u2019s \u201cDeal\u201d \u2013 \u2018now\u2019\u2014done \n\t ok ") == (
        "trump's \"deal\" - 'now'-done ok"
    )
    assert normalize("") == ""
    assert normalize(" \n\t\u00a0") == ""


def test_contains_curly_vs_straight_and_whitespace():
    hay = "Reuters also reached out to Trump\u2019s communications\n  director, Stephen Chang."
    assert contains(hay, "trump's communications director")
    assert contains("Trump's   COMMUNICATIONS director", "Trump\u2019s communications director")
    assert contains("He said \u201cno deal\u201d today", 'said "no deal"')
    assert contains("a 2022\u20132023 plan", "2022-2023")
    assert not contains(hay, "Stephen Chung")


def test_contains_empty_needle_is_false():
    assert not contains("anything", "")
    assert not contains("anything", "  \n ")


# --- retrieval over evidence ----------------------------------------------------------------

P = [
    "Intro text about nothing.",
    "Putin calls a draft agreement   that was nearly approved in April 2022 a basis.",
    "Biden\u2019s decision to allow Ukraine to use U.S. ATACMS missiles.",
    "Unrelated passage.",
]
E = [
    "a draft agreement that was nearly approved in April 2022",
    "Biden's decision to allow Ukraine to use U.S. ATACMS missiles",
    "a quote that was never retrieved",
]


def test_evidence_found_strict_per_quote():
    assert evidence_found(P, E) == [True, True, False]
    # 80% of a quote is not enough: strict whole-quote containment in a single passage.
    assert evidence_found(["nearly approved in April"], ["was nearly approved in April 2022"]) == [False]
    # A quote split across two passages is not found.
    assert evidence_found(["a draft agreement", "that was nearly approved"], ["a draft agreement that was"]) == [False]
    assert evidence_found([], ["x"]) == [False]
    assert evidence_found(P, []) == []


def test_first_hit_rank():
    assert first_hit_rank(P, E) == 2
    assert first_hit_rank(P, E[1:]) == 3
    assert first_hit_rank(P, ["nope"]) is None
    assert first_hit_rank([], E) is None
    assert first_hit_rank(P, []) is None


def test_hit_at():
    assert hit_at(1, 1) == 1.0
    assert hit_at(3, 3) == 1.0
    assert hit_at(4, 3) == 0.0
    assert hit_at(None, 10) == 0.0


def test_reciprocal_rank():
    assert reciprocal_rank(1) == 1.0
    assert reciprocal_rank(3) == pytest.approx(1 / 3)
    assert reciprocal_rank(10, k=10) == pytest.approx(0.1)
    assert reciprocal_rank(11, k=10) == 0.0
    assert reciprocal_rank(4, k=3) == 0.0
    assert reciprocal_rank(None) == 0.0


def test_evidence_recall_at():
    assert evidence_recall_at(P, E, 4) == pytest.approx(2 / 3)
    assert evidence_recall_at(P, E, 2) == pytest.approx(1 / 3)
    assert evidence_recall_at(P, E, 1) == 0.0
    assert evidence_recall_at(P, [], 5) == 0.0
    assert evidence_recall_at([], E, 5) == 0.0


def test_ndcg_hand_computed_ranks_2_and_3_of_3_quotes():
    texts = ["nothing", "has q1 here", "has q2 here"]
    ev = ["q1", "q2", "q3"]
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(texts, ev, k=10) == pytest.approx(dcg / idcg)


def test_ndcg_perfect_and_zero_and_cutoff():
    assert ndcg_at(["q1", "q2", "other"], ["q1", "q2"], k=10) == pytest.approx(1.0)
    assert ndcg_at(["q1"], ["q1"], k=1) == pytest.approx(1.0)
    assert ndcg_at(["a", "b"], ["q1"], k=10) == 0.0
    assert ndcg_at([], ["q1"], k=10) == 0.0
    assert ndcg_at(["q1"], [], k=10) == 0.0
    # Relevant passage at rank 3 is outside k=2.
    assert ndcg_at(["a", "b", "q1"], ["q1"], k=2) == 0.0
    # Ideal count capped at k: 3 quotes, k=1, hit at rank 1 -> perfect.
    assert ndcg_at(["q1 q2 q3", "x"], ["q1", "q2", "q3"], k=1) == pytest.approx(1.0)
    # One quote, found only at rank 2: DCG = 1/log2(3), IDCG = 1.
    assert ndcg_at(["x", "q1"], ["q1"], k=10) == pytest.approx(1 / math.log2(3))


def test_ndcg_more_relevant_passages_than_quotes_stays_bounded():
    # One quote present in two overlapping chunks at ranks 2 and 3: ideal count becomes 2.
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at(["x", "q1 a", "q1 b"], ["q1"], k=10) == pytest.approx(dcg / idcg)
    assert ndcg_at(["q1 a", "q1 b"], ["q1"], k=10) == pytest.approx(1.0)


def test_distinct_docs_at():
    ids = ["a", "a", "b", "c", "b"]
    assert distinct_docs_at(ids, 1) == 1
    assert distinct_docs_at(ids, 3) == 2
    assert distinct_docs_at(ids, 10) == 3
    assert distinct_docs_at([], 5) == 0
    assert distinct_docs_at(ids, 0) == 0


def test_hits_by_key():
    keys = ["https://a/1", "https://b/2", "https://c/3", "https://b/2"]
    assert hits_by_key(keys, "https://b/2") == 2
    assert hits_by_key(keys, "https://a/1") == 1
    assert hits_by_key(keys, "https://B/2") is None  # exact match only
    assert hits_by_key([], "https://a/1") is None


def test_answer_in_passages():
    assert answer_in_passages(P, "atacms", 3)
    assert not answer_in_passages(P, "atacms", 2)
    assert answer_in_passages(P, "april   2022", 2)
    assert not answer_in_passages(P, "", 4)
    assert not answer_in_passages([], "atacms", 5)


# --- nuggets --------------------------------------------------------------------------------


def test_nugget_recall():
    ans = "The draft was nearly approved in April\u00a02022 after talks in Istanbul [2]."
    assert nugget_recall(ans, [["april 2022"], ["istanbul"]]) == 1.0
    assert nugget_recall(ans, [["april 2022"], ["geneva"]]) == 0.5
    assert nugget_recall("Five officials spoke.", [["five", "5 officials"]]) == 1.0
    assert nugget_recall("5 officials spoke.", [["five", "5 officials"]]) == 1.0
    assert nugget_recall("Nobody spoke.", [["five", "5 officials"], ["kremlin"], ["freeze"]]) == 0.0
    assert nugget_recall("anything", []) == 1.0
    assert nugget_recall("", [["x"]]) == 0.0
    assert nugget_recall("x", [[]]) == 0.0


# --- citations and sentences ----------------------------------------------------------------


def test_parse_citations_forms():
    assert parse_citations("Russia demands neutrality [1]. It wants Crimea [2][3].") == [1, 2, 3]
    assert parse_citations("A [1, 2]. B [2,3] and [ 4 ]. C [1].") == [1, 2, 2, 3, 4, 1]
    assert parse_citations("no markers, [a], [], [1.5] or [-1]") == []
    assert parse_citations("He said \u201cit is [7]\u201d") == [7]
    assert parse_citations("") == []
    assert parse_citations("[12]") == [12]


def test_split_sentences_markers_stay_with_sentence():
    assert split_sentences("A [1]. B [2].") == ["A [1].", "B [2]."]
    assert split_sentences("A. [1] B. [2]") == ["A. [1]", "B. [2]"]
    assert split_sentences("A. [1][2] B? [3, 4] C!") == ["A. [1][2]", "B? [3, 4]", "C!"]
    assert split_sentences("Russia demands neutrality [1]. It wants Crimea [2][3].") == [
        "Russia demands neutrality [1].",
        "It wants Crimea [2][3].",
    ]


def test_split_sentences_edges():
    assert split_sentences("") == []
    assert split_sentences("   \n ") == []
    assert split_sentences("No end punctuation [1]") == ["No end punctuation [1]"]
    assert split_sentences("Costs 3.5 billion. Done.") == ["Costs 3.5 billion.", "Done."]
    assert split_sentences('He said "stop." Then left.') == ['He said "stop."', "Then left."]
    # Lowercase continuation is not a sentence break (abbreviations in news text).
    assert split_sentences("The U.S. officials met. Then left.") == ["The U.S. officials met.", "Then left."]
    assert split_sentences("Line one\nLine two [1]") == ["Line one", "Line two [1]"]
    # The service's own format: "sentence [n]" joined by spaces, even without end punctuation.
    assert split_sentences("Headline without stop [1] Next one. [2]") == ["Headline without stop [1]", "Next one. [2]"]
    assert split_sentences("Putin [1] and Trump [2] met. Done [3]") == ["Putin [1] and Trump [2] met.", "Done [3]"]
    assert split_sentences("[1] Leading marker. B [2].") == ["[1] Leading marker.", "B [2]."]


DOCS = {"d1": "Alpha beta gamma. Delta epsilon.", "d2": "Zeta eta theta."}


def _passage(rank, doc_id, start, end, text=None):
    return {
        "rank": rank,
        "score": 1.0 / rank,
        "doc_id": doc_id,
        "chunk_id": f"{doc_id}:{start}",
        "start": start,
        "end": end,
        "text": DOCS[doc_id][start:end] if text is None else text,
    }


def test_citation_validity_all_valid():
    ps = [_passage(1, "d1", 0, 17), _passage(2, "d2", 0, 15)]
    assert ps[0]["text"] == "Alpha beta gamma."
    assert citation_validity("Alpha [1]. Zeta [2][1].", ps, DOCS) == 1.0


def test_citation_validity_out_of_range_rank_in_five_passage_answer():
    ps = [_passage(r, "d1", 0, 5) for r in range(1, 6)]
    assert citation_validity("A [1]. B [12].", ps, DOCS) == 0.5
    assert citation_validity("A [12].", ps, DOCS) == 0.0
    assert citation_validity("A [0].", ps, DOCS) == 0.0


def test_citation_validity_text_not_matching_offsets():
    good = _passage(1, "d1", 0, 17)
    bad = _passage(2, "d1", 18, 32, text="Delta epsilon!")  # document says "Delta epsilon."
    assert DOCS["d1"][18:32] == "Delta epsilon."
    assert citation_validity("X [1]. Y [2].", [good, bad], DOCS) == 0.5
    unknown_doc = _passage(3, "d2", 0, 4) | {"doc_id": "missing"}
    assert citation_validity("Z [3].", [unknown_doc], DOCS) == 0.0
    out_of_bounds = {**_passage(4, "d2", 0, 4), "start": -3, "end": 0, "text": ""}
    assert citation_validity("W [4].", [out_of_bounds], DOCS) == 0.0


def test_citation_validity_no_citations_is_one():
    assert citation_validity("No markers here.", [], DOCS) == 1.0
    assert citation_validity("", [_passage(1, "d1", 0, 5)], DOCS) == 1.0
    assert citation_validity("A [1].", [], DOCS) == 0.0


def test_content_words():
    assert content_words("The officials said Trump\u2019s envoys [2] were in Moscow.") == {
        "official",
        "trump",
        "envoy",
        "moscow",
    }
    assert content_words("Press business was 2022") == {"press", "business", "2022"}
    assert content_words("") == set()
    assert content_words("it is the [1][2, 3]") == set()
    assert content_words("gas bus") == {"gas", "bus"}  # words of 3 chars keep their s


def test_sentence_supported_evidence_route():
    ev = ["nearly approved in April 2022"]
    cited = ["The draft was nearly approved in April\u00a02022 in Istanbul."]
    assert sentence_supported("Completely different words [1].", cited, ev)


def test_sentence_supported_overlap_route():
    cited = ["Russian officials discussed a freeze on the front lines in Moscow."]
    # content words: {russian, official, freeze, front, line} -> all 5 present.
    assert sentence_supported("Russian officials want a freeze of front lines [1].", cited, [])
    # {russian, official, want, ceasefire} -> 2/4 = 0.5 >= 0.5.
    assert sentence_supported("Russian officials want ceasefire [1].", cited, [], min_overlap=0.5)
    assert not sentence_supported("Russian officials want ceasefire [1].", cited, [], min_overlap=0.51)
    # {ukraine, want, ceasefire} -> 0/3.
    assert not sentence_supported("Ukraine wants ceasefire [1].", cited, [])


def test_sentence_supported_no_citations_or_no_content():
    assert not sentence_supported("Russian officials.", [], ["Russian officials"])
    assert not sentence_supported("It is [1].", ["anything at all"], [])


def test_citation_support():
    by_rank = {
        1: "Russia demands Ukrainian neutrality in any deal.",
        2: "Moscow wants to keep Crimea and four regions.",
        3: "Unrelated weather report.",
    }
    ans = "Russia demands neutrality [1]. It wants Crimea [2]. Sunny skies expected [3]. Uncited claim."
    # supported: s1 (russia, demand, neutrality ⊂ p1), s2 (want, crimea ⊂ p2); s3 {sunny, sky,
    # expected} vs {unrelated, weather, report} -> 0; s4 no citation.
    assert citation_support(ans, by_rank, []) == pytest.approx(2 / 4)
    # Evidence in cited passage 3 makes sentence 3 supported regardless of overlap.
    assert citation_support(ans, by_rank, ["weather report"]) == pytest.approx(3 / 4)
    # Invalid citation [12] is ignored; a sentence citing only it is unsupported.
    assert citation_support("Russia demands neutrality [12].", by_rank, []) == 0.0
    assert citation_support("Russia demands neutrality [12][1].", by_rank, []) == 1.0
    assert citation_support("", by_rank, []) == 0.0
    assert citation_support("   ", {}, []) == 0.0


# --- refusals and aggregates ----------------------------------------------------------------


def test_refusal_metrics():
    # (is_unanswerable_gold, system_said_answerable)
    pairs = [(True, False), (True, True), (True, False), (False, True), (False, False), (False, True), (False, True)]
    assert refusal_accuracy(pairs) == pytest.approx(2 / 3)
    assert false_refusal_rate(pairs) == pytest.approx(1 / 4)
    assert refusal_accuracy([]) == 0.0
    assert false_refusal_rate([]) == 0.0
    assert refusal_accuracy([(False, True)]) == 0.0
    assert false_refusal_rate([(True, False)]) == 0.0


def test_percentile_hand_values():
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([4, 1, 3, 2], 0) == 1.0
    assert percentile([4, 1, 3, 2], 100) == 4.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) == 0.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_percentile_matches_numpy():
    rng = random.Random(1234)
    for _ in range(20):
        xs = [rng.uniform(0, 1000) for _ in range(rng.randint(1, 40))]
        for p in (0, 5, 25, 50, 90, 95, 99, 100, rng.uniform(0, 100)):
            assert percentile(xs, p) == pytest.approx(float(np.percentile(xs, p)), rel=1e-12, abs=1e-9)


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5
    assert mean([]) == 0.0
    assert mean(x for x in (0.1, 0.2, 0.3)) == pytest.approx(0.2)


# --- multiple choice and answers that contain the answer ------------------------------------


def test_answer_in_answer_ignores_case_and_quotes():
    assert answer_in_answer("Netflix said Squid Game will return [1].", "\u201cSquid Game\u201d")
    assert answer_in_answer("It is \u201cSQUID GAME\u201d.", "Squid Game")
    assert answer_in_answer("Trump\u2019s   deal", "Trump's deal")
    assert not answer_in_answer("Boris Johnson resigned.", "UK Prime Minister Boris Johnson")
    assert not answer_in_answer("anything", "\u201c \u201d") and not answer_in_answer("", "Europe")


def test_mc_accuracy_counts_abstentions_wrong_and_abstention_rate_separately():
    picks, gold = [0, 2, None, 1, None], [0, 1, 3, 1, 0]
    assert mc_accuracy(picks, gold) == 2 / 5  # questions 1 and 4 right; both abstentions wrong
    assert abstention_rate(picks) == 2 / 5
    assert mc_accuracy([], []) == 0.0 and abstention_rate([]) == 0.0
    with pytest.raises(ValueError):
        mc_accuracy([0], [0, 1])
