#!/usr/bin/env python3
"""A real pgvector client for the molecule verifier: psycopg2 + pgvector's psycopg2 adapter.

Connection from the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
Modes (first argument), each printing one JSON object:
  seed     replace the rows of `documents` with 200 seeded random unit vectors (content doc-<i>)
  search   count the rows and run ORDER BY embedding <=> %s LIMIT 5 with a vector near doc-137,
           with and without sequential scans (the second must use the HNSW index)
  reader   read as a reader role and try to write (must be refused)
"""
import json
import sys

import numpy as np
import psycopg2
from pgvector.psycopg2 import register_vector

DIM = 1536
ROWS = 200
TARGET = 137


def vectors():
    rng = np.random.default_rng(42)
    vecs = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def connect():
    conn = psycopg2.connect("")
    register_vector(conn)
    return conn


def seed():
    conn = connect()
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE documents RESTART IDENTITY")
        for i, vec in enumerate(vectors()):
            cur.execute(
                "INSERT INTO documents (content, metadata, embedding) VALUES (%s, %s, %s)",
                ("doc-%d" % i, json.dumps({"i": i}), vec),
            )
        cur.execute("SELECT count(*) FROM documents")
        return {"inserted": cur.fetchone()[0]}


def search():
    query = vectors()[TARGET] + np.random.default_rng(7).normal(0, 0.01, DIM).astype(np.float32)
    sql = "SELECT content, embedding <=> %s AS distance FROM documents ORDER BY embedding <=> %s LIMIT 5"
    conn = connect()
    out = {}
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM documents")
        out["count"] = cur.fetchone()[0]
        cur.execute(sql, (query, query))
        out["top"] = [[content, float(dist)] for content, dist in cur.fetchall()]
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("EXPLAIN " + sql, (query, query))
        out["plan"] = "\n".join(row[0] for row in cur.fetchall() if "Order By" not in row[0])
        cur.execute(sql, (query, query))
        out["top_indexed"] = [content for content, _dist in cur.fetchall()]
    return out


def reader():
    conn = connect()
    out = {}
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM documents")
        out["count"] = cur.fetchone()[0]
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO documents (content, embedding) VALUES ('x', %s)", (np.zeros(DIM, np.float32),))
        out["insert"] = "allowed"
    except psycopg2.errors.InsufficientPrivilege as exc:
        out["insert"] = "refused: %s" % str(exc).strip().splitlines()[0]
    return out


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "search"
    result = {"seed": seed, "search": search, "reader": reader}[mode]()
    json.dump(result, sys.stdout)
