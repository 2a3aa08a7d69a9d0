// The page: ask POST /query, render the answer with linked [n] citations and each passage inside
// a little context from its article (GET /documents/{id}); or ask POST /timeline and render the
// story's events oldest first, each with its date, key sentence (in context) and citation.
//
// Article text is untrusted. Everything shown is built with createElement / textContent; this
// file never assigns innerHTML.
"use strict";

(function () {
  const CONTEXT_CHARS = 200;
  const NOT_COVERED = "The articles don't cover this question.";

  const $ = (id) => document.getElementById(id);
  const form = $("ask");
  const input = $("question");
  const kSelect = $("k");
  const modeSelect = $("mode");
  const asOfInput = $("as-of");
  const button = $("submit");
  const timelineButton = $("timeline-submit");
  const status = $("status");
  const answerSection = $("answer");
  const answerText = $("answer-text");
  const passagesSection = $("passages");
  const passagesHeading = $("passages-heading");
  const list = $("passage-list");
  const timeWindow = $("time-window");
  const timelineSection = $("timeline");
  const timelineHeading = $("timeline-heading");
  const eventList = $("event-list");
  const undatedSection = $("undated");
  const undatedList = $("undated-list");
  const keyRow = $("key-row");
  const keyInput = $("api-key");
  const results = $("results");

  // Each question bumps this; late document fetches of an older question are dropped.
  let generation = 0;
  const documents = new Map(); // doc_id -> Promise<document | null>

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setStatus(message, kind) {
    status.textContent = message;
    status.className = "status" + (kind ? " " + kind : "");
  }

  function passageId(rank) {
    return "passage-" + rank;
  }

  function plural(n, one, many) {
    return n === 1 ? "1 " + one : n + " " + many;
  }

  // --- talking to the API ---------------------------------------------------------------------

  // The API key, when the server protects reads (RAG_PROTECT_READS): sent, never stored.
  function headers(extra) {
    const out = Object.assign({ Accept: "application/json" }, extra || {});
    const key = keyInput.value.trim();
    if (key) out.Authorization = "Bearer " + key;
    return out;
  }

  async function errorMessage(response) {
    let message = "";
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") message = body.error;
    } catch (_) {
      /* not JSON */
    }
    if (!message) message = response.statusText || "unexpected response";
    if (!/[.!?]$/.test(message)) message += ".";
    return "Error " + response.status + ": " + message;
  }

  function fetchDocument(docId) {
    if (!documents.has(docId)) {
      const promise = fetch("/documents/" + encodeURIComponent(docId), { headers: headers() })
        .then((r) => (r.ok ? r.json() : null))
        .catch(() => null);
      documents.set(docId, promise);
      promise.then((doc) => {
        if (doc === null) documents.delete(docId); // try again next time
      });
    }
    return documents.get(docId);
  }

  // --- offsets --------------------------------------------------------------------------------

  // The API counts characters as Unicode code points; JavaScript strings index UTF-16 units.
  function unitIndex(text, codePoint) {
    if (!/[\uD800-\uDFFF]/.test(text)) return codePoint;
    let units = 0;
    let seen = 0;
    for (const ch of text) {
      if (seen === codePoint) break;
      units += ch.length;
      seen += 1;
    }
    return units;
  }

  // Widen [from, to) to whole words, at most `slack` characters further.
  function snapStart(text, from, slack) {
    if (from <= 0) return 0;
    const limit = Math.max(0, from - slack);
    for (let i = from; i > limit; i--) if (/\s/.test(text[i - 1])) return i;
    return from;
  }

  function snapEnd(text, to, slack) {
    if (to >= text.length) return text.length;
    const limit = Math.min(text.length, to + slack);
    for (let i = to; i < limit; i++) if (/\s/.test(text[i])) return i;
    return to;
  }

  // { before, span, after, clippedStart, clippedEnd } or null when the offsets do not match.
  function contextAround(docText, passage) {
    const start = unitIndex(docText, passage.start);
    const end = unitIndex(docText, passage.end);
    if (docText.slice(start, end) !== passage.text) return null;
    const from = snapStart(docText, Math.max(0, start - CONTEXT_CHARS), 30);
    const to = snapEnd(docText, Math.min(docText.length, end + CONTEXT_CHARS), 30);
    return {
      before: docText.slice(from, start),
      span: passage.text,
      after: docText.slice(end, to),
      clippedStart: from > 0,
      clippedEnd: to < docText.length,
    };
  }

  // Text with its line breaks kept as text (so textContent is exactly the article's characters);
  // each run of newlines sits in a span the stylesheet turns into a short paragraph gap.
  function textWithBreaks(className, text) {
    const node = el(className === "span" ? "mark" : "span", className);
    for (const part of text.split(/(\n+)/)) {
      if (!part) continue;
      if (part[0] === "\n") node.append(el("span", "br", part));
      else node.append(document.createTextNode(part));
    }
    return node;
  }

  function renderQuote(quote, passage, context) {
    quote.replaceChildren();
    if (context && context.clippedStart) quote.append(el("span", "ellipsis", "\u2026 "));
    if (context) quote.append(textWithBreaks("before", context.before));
    quote.append(textWithBreaks("span", passage.text));
    if (context) quote.append(textWithBreaks("after", context.after));
    if (context && context.clippedEnd) quote.append(el("span", "ellipsis", " \u2026"));
  }

  // --- rendering ------------------------------------------------------------------------------

  // "2025-03-14" from an ISO date or timestamp; anything else is shown as sent.
  function formatDate(published) {
    if (!published) return null;
    const m = /^(\d{4}-\d{2}-\d{2})/.exec(published);
    return m ? { text: m[1], iso: m[1] } : { text: String(published), iso: null };
  }

  function renderAnswer(data, ranks) {
    answerText.replaceChildren();
    // A refusal is said once, in the status line above (which screen readers announce).
    if (!data.answerable || !data.answer) {
      answerSection.hidden = true;
      return;
    }
    // "... sentence [2] ... [3]": text stays text, a marker that names a passage becomes a link.
    const text = data.answer.text || "";
    const marker = /\[(\d+)\]/g;
    let last = 0;
    let match;
    while ((match = marker.exec(text)) !== null) {
      const rank = Number(match[1]);
      if (!ranks.has(rank)) continue;
      if (match.index > last) answerText.append(document.createTextNode(text.slice(last, match.index)));
      const link = el("a", "cite", "[" + rank + "]");
      link.href = "#" + passageId(rank);
      link.dataset.rank = String(rank);
      link.setAttribute("aria-label", "Passage " + rank);
      answerText.append(link);
      last = match.index + match[0].length;
    }
    if (last < text.length) answerText.append(document.createTextNode(text.slice(last)));
    answerSection.hidden = false;
  }

  function renderPassage(passage, cited, gen) {
    const item = el("li", "passage");
    item.id = passageId(passage.rank);
    item.tabIndex = -1;
    item.dataset.docId = passage.doc_id;
    if (cited) item.classList.add("cited");

    const head = el("div", "passage-head");
    head.append(el("span", "rank", "[" + passage.rank + "]"));
    const title = el("h3", "title", passage.title || passage.doc_id);
    head.append(title);
    item.append(head);

    const meta = el("p", "meta");
    const parts = [];
    if (passage.source) parts.push(el("span", "source", passage.source));
    const date = formatDate(passage.published);
    if (date) {
      const time = el("time", "date", date.text);
      if (date.iso) time.dateTime = date.iso;
      parts.push(time);
    }
    parts.push(el("span", "score", "score " + Number(passage.score).toFixed(3)));
    if (passage.title && !(passage.source || "").includes(passage.doc_id)) parts.push(el("span", "doc-id", passage.doc_id));
    parts.forEach((p, i) => {
      if (i > 0) meta.append(el("span", "sep", " \u00b7 "));
      meta.append(p);
    });
    item.append(meta);

    if (passage.also_in && passage.also_in.length) {
      item.append(el("p", "also-in", "Same story also in: " + passage.also_in.join(", ")));
    }

    const quote = el("blockquote", "context");
    renderQuote(quote, passage, null);
    item.append(quote);

    fetchDocument(passage.doc_id).then((doc) => {
      if (gen !== generation || !doc || typeof doc.text !== "string") return;
      const context = contextAround(doc.text, passage);
      if (context) renderQuote(quote, passage, context);
    });
    return item;
  }

  // The days the question named ("this week"), which ranking preferred: said, since the ranking
  // leans on them without the reader having set a date limit.
  function renderTimeWindow(window_) {
    const ok = window_ && typeof window_.start === "string" && typeof window_.end === "string";
    timeWindow.hidden = !ok;
    timeWindow.textContent = ok
      ? "Ranked toward " + window_.start.slice(0, 10) + " to " + window_.end.slice(0, 10) +
        ", the time \u201c" + String(window_.words || "") + "\u201d names."
      : "";
  }

  function render(data, gen) {
    const passages = Array.isArray(data.passages) ? data.passages : [];
    const ranks = new Set(passages.map((p) => p.rank));
    const cited = new Set((data.answer && data.answer.citations) || []);

    renderAnswer(data, ranks);

    list.replaceChildren(...passages.map((p) => renderPassage(p, cited.has(p.rank), gen)));
    renderTimeWindow(data.time_window);
    passagesHeading.textContent = data.answerable ? "Passages" : "Closest passages";
    passagesSection.hidden = passages.length === 0;

    const n = passages.length;
    const found = n === 0 ? "no passages" : n === 1 ? "1 passage" : n + " passages";
    if (!data.answerable) {
      setStatus(n === 0 ? NOT_COVERED : NOT_COVERED + " Showing the closest " + found + ".", "refused");
    } else {
      setStatus("Answer drafted from " + found + ".", "done");
    }
  }

  // --- the timeline ---------------------------------------------------------------------------

  // An article's URL as a link target, only when it is http(s): a source may be a file path or,
  // from a hostile article, a javascript: URL.
  function webUrl(source) {
    try {
      const url = new URL(source);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  // "doc-id, 2025-03-03, also in: a, b"
  function articleLine(article) {
    const item = el("li", "event-article");
    item.dataset.docId = article.doc_id;
    item.append(el("span", "title", article.title || article.doc_id));
    const date = formatDate(article.published);
    if (date) {
      item.append(el("span", "sep", " \u00b7 "));
      const time = el("time", "date", date.text);
      if (date.iso) time.dateTime = date.iso;
      item.append(time);
    }
    if (article.also_in && article.also_in.length) {
      item.append(el("span", "copies", " \u00b7 also in " + article.also_in.join(", ")));
    }
    return item;
  }

  function renderEvent(event, index, gen) {
    const item = el("li", "event");
    item.id = "event-" + (index + 1);
    const sentence = event.sentence;
    item.dataset.docId = sentence.doc_id;

    const head = el("div", "event-head");
    const time = el("time", "event-date", event.date);
    time.dateTime = event.date;
    head.append(time);
    head.append(el("h3", "title", event.articles[0].title || event.articles[0].doc_id));
    item.append(head);

    const quote = el("blockquote", "context");
    renderQuote(quote, sentence, null);
    item.append(quote);

    // The citation: the article the sentence comes from, and where in it.
    const cite = el("p", "meta citation");
    const url = webUrl(sentence.source || "");
    const name = sentence.title || sentence.doc_id;
    if (url) {
      const link = el("a", "source-link", name);
      link.href = url;
      link.rel = "noopener noreferrer";
      cite.append(link);
    } else {
      cite.append(el("span", "source", sentence.source ? name + " (" + sentence.source + ")" : name));
    }
    cite.append(el("span", "sep", " \u00b7 "));
    cite.append(el("span", "offsets", sentence.doc_id + ", characters " + sentence.start + "\u2013" + sentence.end));
    item.append(cite);

    const articles = el("ul", "event-articles");
    articles.setAttribute("aria-label", plural(event.articles.length, "article", "articles") + " on this event");
    articles.append(...event.articles.map(articleLine));
    item.append(articles);

    fetchDocument(sentence.doc_id).then((doc) => {
      if (gen !== generation || !doc || typeof doc.text !== "string") return;
      const context = contextAround(doc.text, sentence);
      if (context) renderQuote(quote, sentence, context);
    });
    return item;
  }

  function renderTimeline(data, gen) {
    answerSection.hidden = true;
    passagesSection.hidden = true;
    const events = Array.isArray(data.events) ? data.events : [];
    const undated = Array.isArray(data.undated) ? data.undated : [];
    eventList.replaceChildren(...events.map((e, i) => renderEvent(e, i, gen)));
    undatedList.replaceChildren(...undated.map(articleLine));
    timelineSection.hidden = events.length === 0;
    undatedSection.hidden = undated.length === 0;
    if (!data.answerable) {
      setStatus(NOT_COVERED, "refused");
      return;
    }
    const articles = events.reduce((n, e) => n + e.articles.length, 0);
    if (events.length === 0) {
      setStatus("No dated article tells this story, so there is no timeline to draw.", "refused");
      return;
    }
    timelineHeading.textContent = "Timeline, " + events[0].date + " to " + events[events.length - 1].date;
    setStatus("Timeline of " + plural(events.length, "event", "events") + " from " +
      plural(articles, "article", "articles") + ", oldest first.", "done");
  }

  // --- citations ------------------------------------------------------------------------------

  function reducedMotion() {
    return window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  function showPassage(rank) {
    const target = $(passageId(rank));
    if (!target) return;
    list.querySelectorAll(".passage.flash").forEach((p) => p.classList.remove("flash"));
    // Restart the highlight animation even when the same passage is chosen twice.
    void target.offsetWidth;
    target.classList.add("flash");
    target.scrollIntoView({ behavior: reducedMotion() ? "auto" : "smooth", block: "start" });
    target.focus({ preventScroll: true });
    if (history.replaceState) history.replaceState(history.state, "", "#" + passageId(rank));
  }

  answerText.addEventListener("click", (event) => {
    const link = event.target.closest("a.cite");
    if (!link) return;
    event.preventDefault();
    showPassage(Number(link.dataset.rank));
  });

  // --- the form -------------------------------------------------------------------------------

  function clearResults() {
    answerSection.hidden = true;
    passagesSection.hidden = true;
    timelineSection.hidden = true;
    undatedSection.hidden = true;
    answerText.replaceChildren();
    list.replaceChildren();
    eventList.replaceChildren();
    undatedList.replaceChildren();
  }

  // Both buttons wait; the one pressed says so.
  function busy(on, view) {
    button.disabled = on;
    timelineButton.disabled = on;
    results.classList.toggle("stale", on);
    results.setAttribute("aria-busy", on ? "true" : "false");
    button.textContent = on && view !== "timeline" ? "Searching\u2026" : "Ask";
    timelineButton.textContent = on && view === "timeline" ? "Searching\u2026" : "Timeline";
    form.setAttribute("aria-busy", on ? "true" : "false");
  }

  function remember(question, k, mode, asOf, view) {
    if (!history.replaceState) return;
    const params = new URLSearchParams({ q: question });
    if (k !== "5") params.set("k", k);
    if (mode) params.set("mode", mode);
    if (asOf) params.set("as_of", asOf);
    if (view === "timeline") params.set("view", "timeline");
    history.replaceState(null, "", "?" + params.toString());
  }

  // Ask (Enter, or the Ask button): POST /query. The Timeline button: POST /timeline, with the
  // server's own number of passages to gather (the Passages choice is the answer's).
  async function ask(event, asked) {
    if (event) event.preventDefault();
    const view = asked || (event && event.submitter === timelineButton ? "timeline" : "ask");
    const question = input.value.trim();
    if (!question) {
      setStatus("Type a question first.", "error");
      input.focus();
      return;
    }
    const gen = ++generation;
    const body = { question: question };
    if (view !== "timeline") body.k = Number(kSelect.value) || 5;
    if (modeSelect.value) body.mode = modeSelect.value;
    // As of that day (its whole day counts); empty: the server's now.
    if (asOfInput.value) body.as_of = asOfInput.value;
    remember(question, kSelect.value, modeSelect.value, asOfInput.value, view);

    busy(true, view);
    setStatus("Searching\u2026", "waiting");
    try {
      let response;
      try {
        response = await fetch(view === "timeline" ? "/timeline" : "/query", {
          method: "POST",
          headers: headers({ "Content-Type": "application/json" }),
          body: JSON.stringify(body),
        });
      } catch (_) {
        if (gen === generation) {
          clearResults();
          setStatus("Could not reach the server. Check your connection and try again.", "error");
        }
        return;
      }
      if (gen !== generation) return;
      if (!response.ok) {
        const message = await errorMessage(response);
        if (gen !== generation) return;
        clearResults();
        if (response.status === 401) {
          keyRow.hidden = false;
          setStatus(message + " Enter an API key and ask again.", "error");
          keyInput.focus();
          return;
        }
        setStatus(message, "error");
        return;
      }
      let data;
      try {
        data = await response.json();
      } catch (_) {
        clearResults();
        setStatus("The server sent a reply this page cannot read.", "error");
        return;
      }
      if (gen !== generation) return;
      if (view === "timeline") {
        clearResults();
        renderTimeline(data, gen);
      } else {
        timelineSection.hidden = true;
        undatedSection.hidden = true;
        render(data, gen);
      }
    } finally {
      if (gen === generation) busy(false, view);
    }
  }

  form.addEventListener("submit", ask);

  // A shared link (?q=...&k=...&mode=...&as_of=...&view=timeline) asks its question on load.
  const params = new URLSearchParams(window.location.search);
  if (params.get("k") && [...kSelect.options].some((o) => o.value === params.get("k"))) kSelect.value = params.get("k");
  if (params.get("mode") && [...modeSelect.options].some((o) => o.value === params.get("mode"))) {
    modeSelect.value = params.get("mode");
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(params.get("as_of") || "")) asOfInput.value = params.get("as_of");
  if (params.get("q")) {
    input.value = params.get("q");
    ask(null, params.get("view") === "timeline" ? "timeline" : "ask");
  } else {
    input.focus();
  }
})();
