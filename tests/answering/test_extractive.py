from rag.answering.extractive import NOT_COVERED
from rag.schema import Query
from rag.text import sentences


def test_sentences_keep_offsets_and_abbreviations():
    text = "The new U.S. president spoke. Mr. Trump said “yes.” Then\nanother line"
    got = sentences(text)
    assert all(text[s.start : s.end] == s.text for s in got)
    assert [s.text for s in got] == ["The new U.S. president spoke.", "Mr. Trump said “yes.”", "Then", "another line"]


def test_answer_cites_returned_passages(seeds_service):
    r = seeds_service.ask(Query(question="What does Russia demand on NATO?"))
    assert r.answerable and r.answer is not None
    assert r.answer.citations and set(r.answer.citations) <= {p.rank for p in r.passages}
    for n in r.answer.citations:
        assert f"[{n}]" in r.answer.text
    assert "nato" in r.answer.text.lower()


def test_far_question_is_refused(seeds_service):
    r = seeds_service.ask(Query(question="What is the best recipe for sourdough bread?"))
    assert not r.answerable
    assert r.answer.text == NOT_COVERED and r.answer.citations == []
    assert r.passages  # passages are still shown, so the reader can judge


def test_answer_false_omits_answer(seeds_service):
    r = seeds_service.ask(Query(question="Who is Trump's envoy?", answer=False))
    assert r.answer is None and len(r.passages) == 5
