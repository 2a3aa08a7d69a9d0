"""Multiple-choice answers (rag/answering/choices.py and drafting.draft_choice) on hand-made articles.

The LLM path talks to `FakeLLM`, a real OpenAI-style HTTP server on loopback (tests/support.py):
its `good` mode repeats the first sentence of passage [1], cited [1]; `madeup` states what no
passage says; `refuse` says the passages do not answer.
"""

from __future__ import annotations

import pytest

from rag.answering.choices import ABSTAINED, pick, score_choices
from rag.answering.drafting import draft_choice, named_choice
from rag.answering.generator_openai import OpenAIGenerator
from rag.retrieval.search import Hit
from rag.storage.store import ChunkRow

from support import EXTRACTIVE, FakeLLM


def hits(*texts: str) -> list[Hit]:
    return [Hit(ChunkRow(i, f"doc{i}", 0, 0, len(t), t), 1.0 - i / 10, 0.6) for i, t in enumerate(texts)]


HOST = "Which city will host the 2030 harbour games?"
CITIES = ["Dunport", "Marrick", "Elsby", "Corran"]
ARTICLES = hits(
    "The committee chose Marrick to host the 2030 harbour games, after a vote in Geneva.",
    "Dunport had hoped to host the games. Elsby's mayor was on holiday when the news came.",
    "Corran, Dunport and Marrick sent delegations to Geneva.",
)


def test_the_stated_choice_wins_and_a_mentioned_distractor_does_not():
    out = pick(HOST, CITIES, ARTICLES)
    assert not out.abstained and out.picked == "Marrick" and out.index == 1
    assert out.citations == [1] and out.text == "Marrick [1]" and out.verified
    scores = {s.choice: s for s in out.scores}
    assert [s.choice for s in out.scores] == CITIES  # in the order given
    # Dunport's sentence is about hosting the games, but says it only hoped to: some support, less.
    assert 0 < scores["Dunport"].score < scores["Marrick"].score and scores["Dunport"].citations == [2]
    # Elsby and Corran are named only in sentences that say nothing of the question.
    assert scores["Elsby"].score == 0 and scores["Corran"].score == 0 and scores["Elsby"].citations == []


def test_support_by_hand():
    """Unit weights (no IDF): question terms {citi, host, 2030, harbour, game}. Passage 1 covers
    host, 2030, harbour, game: about = 4/5, Marrick fully stated, rank 1 -> 0.8. Dunport's
    sentence covers host, game: 2/5 at rank 2 -> 0.2."""
    scores = {s.choice: s.score for s in score_choices(HOST, CITIES, ARTICLES)}
    assert scores == pytest.approx({"Dunport": 0.2, "Marrick": 0.8, "Elsby": 0.0, "Corran": 0.0})


def test_abstains_when_no_passage_states_any_choice():
    out = pick(HOST, CITIES, hits("The harbour games drew record crowds in 2026.", "Tides were high in Geneva."))
    assert out.abstained and out.picked is None and out.index is None
    assert out.text == ABSTAINED and out.citations == [] and all(s.score == 0 for s in out.scores)


def test_words_the_question_offers_are_no_support():
    # "Harbour" is in the question: that Marrick Harbour FC shares it says nothing.
    q = "Which team won the Harbour Cup final?"
    out = pick(q, ["Marrick Harbour FC", "Dunport United"], hits("Dunport United won the Harbour Cup final 2-1."))
    assert out.picked == "Dunport United"
    out = pick(q, ["Marrick Harbour FC", "Elsby Rovers"], hits("The Harbour Cup final was played on Sunday."))
    assert out.abstained


def test_words_every_choice_has_are_no_support():
    q = "Which show won at this year's awards?"
    out = pick(q, ["The Tony Awards", "The Emmy Awards"], hits("This year's awards were given out on Sunday."))
    assert out.abstained


def test_numbers_must_all_be_there():
    q = "How much did the anonymous bidder pay for the lunch?"
    out = pick(q, ["$19,000", "$1 million", "$19 million"], hits("An anonymous bidder paid $19 million for the lunch."))
    assert out.picked == "$19 million"
    assert [s.score > 0 for s in out.scores] == [False, False, True]
    out = pick(q, ["$19,000", "$19 million"], hits("The anonymous bidder paid $19,000 for the lunch."))
    assert out.picked == "$19,000"
    q = "How many more months will the player be detained?"
    assert pick(q, ["3", "6"], hits("A court ruled the player will be detained for six more months.")).picked == "6"


def test_the_more_specific_choice_takes_the_sentence():
    q = "Vaccinations began this week for which age group?"
    out = pick(q, ["Children under 5", "Children ages 5 to 12", "Adults over 75"],
               hits("Vaccinations began this week for children ages 5 to 12."))
    assert out.picked == "Children ages 5 to 12"
    assert out.scores[0].score == 0


def test_a_sentence_stating_two_choices_alone_is_a_tie_and_abstains():
    out = pick(HOST, CITIES, hits("Marrick and Dunport will host the 2030 harbour games together."))
    assert out.abstained and out.scores[0].score == out.scores[1].score > 0


def test_named_choice():
    assert named_choice("Squid Game [1].", ["“Game of Thrones”", "“Squid Game”"]) == 1
    assert named_choice("It was West Texas.", ["Texas", "West Texas"]) == 1
    assert named_choice("Texas and Idaho", ["Texas", "Idaho"]) is None
    assert named_choice("Eurasia", ["Asia"]) is None


# --- the LLM's pick, verified ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_llm():
    server = FakeLLM()
    yield server
    server.close()


def openai(fake: FakeLLM, mode: str) -> OpenAIGenerator:
    return OpenAIGenerator(fake.url(mode), "fake-model", timeout_s=5.0, retries=0)


def test_a_supported_llm_pick_stands(fake_llm):
    out = draft_choice(HOST, CITIES, ARTICLES, openai(fake_llm, "good"))
    assert out.picked == "Marrick" and out.generator == "openai" and out.verified and out.fallback is None
    assert out.citations == [1] and "Marrick" in out.text
    assert [s.choice for s in out.scores] == CITIES


@pytest.mark.parametrize(
    "mode,reason",
    [("madeup", "not supported"), ("refuse", "do not say"), ("error500", "HTTP 500")],
)
def test_an_unverified_llm_pick_falls_back_to_the_extractive_one(fake_llm, mode, reason):
    out = draft_choice(HOST, CITIES, ARTICLES, openai(fake_llm, mode))
    assert out.picked == "Marrick" and out.fallback == "extractive" and out.generator == "openai"
    assert reason in out.fallback_reason


def test_an_llm_pick_of_a_choice_no_sentence_names_falls_back(fake_llm):
    # Passage 1's first sentence (what the fake repeats) is supported but names no choice.
    articles = hits("The vote in Geneva took two rounds.", *[h.chunk.text for h in ARTICLES])
    out = draft_choice(HOST, CITIES, articles, openai(fake_llm, "good"))
    assert out.fallback == "extractive" and "name no choice" in out.fallback_reason and out.picked == "Marrick"


def test_the_extractive_generator_picks_without_a_call():
    assert draft_choice(HOST, CITIES, ARTICLES, EXTRACTIVE) == pick(HOST, CITIES, ARTICLES)


def test_a_quantity_may_be_stated_approximately_by_the_nearest_choice_only():
    q = "According to a new estimate, how much does it cost to raise a child?"
    choices = ["$30,000", "$100,000", "$300,000", "$1 million"]
    out = pick(q, choices, hits("Raising a child now costs $310,605, the new estimate says."))
    assert out.picked == "$300,000" and [s.score > 0 for s in out.scores] == [False, False, True, False]
    # At half weight: an exact statement elsewhere outweighs it.
    exact = pick(q, choices, hits("Raising a child costs $310,605, an estimate says.", "The estimate: raising a child costs $1 million."))
    assert exact.scores[3].score > 0 and exact.scores[2].score > 0
    # Counts and years are no quantities: 16 is not "about 17", 2021 not "about 2022".
    q = "How old was the pilot who flew around the world solo?"
    assert pick(q, ["15", "17"], hits("The pilot, 16, flew around the world solo.")).abstained


def test_derived_forms_and_month_abbreviations_state_a_choice():
    q = "Which continent will require a common charger for phones?"
    out = pick(q, ["Europe", "Asia", "Africa"], hits("European lawmakers will require a common charger for phones."))
    assert out.picked == "Europe"
    q = "When are student loan payments set to restart?"
    out = pick(q, ["September", "October"], hits("Student loan payments restart on Sept. 1, the department said."))
    assert out.picked == "September"
    # A shared beginning alone is no derived form: Austria is not Australia.
    assert pick("Which country joined the charger rule?", ["Austria", "Peru"],
                hits("Australia joined the charger rule.")).abstained
