"""The documents table's `author` column, added to indexes made before authors were kept."""

from __future__ import annotations

import sqlite3

from rag.storage.store import Store


def test_an_older_index_gains_the_author_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "index.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE documents (id TEXT PRIMARY KEY, title TEXT, source TEXT, published TEXT, text TEXT NOT NULL, "
        "content_hash TEXT NOT NULL, chunk_count INTEGER NOT NULL, published_day TEXT, dup_of TEXT)"
    )
    conn.execute("INSERT INTO documents VALUES ('a', 'Title', 'src', '2022-09-06', 'text', 'h', 1, '2022-09-06', NULL)")
    conn.commit()
    conn.close()
    store = Store(path)
    (row,) = store.documents()
    assert (row.id, row.title, row.author) == ("a", "Title", None)
    assert store.document("a")[1] == "text"
    Store(path).close()  # opening again finds the column there
    store.close()
