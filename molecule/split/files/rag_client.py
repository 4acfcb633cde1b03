#!/usr/bin/env python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The split scenario's client on an API host: inserts into and searches PostgreSQL (psycopg2) and
Milvus (pymilvus) on the database hosts, as the AI service would. Prints one JSON object.

  rag_client.py insert --run RUN      100 rows in each store, vectors derived from RUN and the row
  rag_client.py search --run RUN      each store's nearest row to row 7's vector (must be row 7),
                                      and the number of rows of RUN in each store
  rag_client.py milvus-login          a wrong token and no token must be refused
  rag_client.py destroy               drop PostgreSQL's documents table and Milvus' documents
                                      collection (the backup test restores them)
Settings: PG_DSN, MILVUS_URI, MILVUS_TOKEN (environment).
"""
import argparse
import hashlib
import json
import os
import sys

ROWS = 100
PG_DIM = 64
MILVUS_DIM = 16


def vector(run, i, dim):
    """A deterministic vector for row i of a run (the same on every call)."""
    out = []
    n = 0
    while len(out) < dim:
        digest = hashlib.sha256(("%s/%d/%d" % (run, i, n)).encode()).digest()
        out.extend(b / 255.0 for b in digest)
        n += 1
    return out[:dim]


def literal(v):
    return "[" + ",".join("%.6f" % x for x in v) + "]"


def run_id(run):
    """Milvus primary keys of a run: a block of 1000 ids from the run's hash."""
    return int(hashlib.sha256(run.encode()).hexdigest()[:8], 16) * 1000


def pg_connect():
    import psycopg2
    return psycopg2.connect(os.environ["PG_DSN"], connect_timeout=10)


def milvus_client(token=None):
    from pymilvus import MilvusClient
    return MilvusClient(uri=os.environ["MILVUS_URI"], token=os.environ.get("MILVUS_TOKEN", "") if token is None else token,
                        timeout=15)


def insert(run):
    with pg_connect() as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO documents (content, metadata, embedding) VALUES (%s, %s, %s::vector)",
                        [("%s doc %d" % (run, i), json.dumps({"run": run, "n": i}), literal(vector(run, i, PG_DIM)))
                         for i in range(ROWS)])
    client = milvus_client()
    base = run_id(run)
    res = client.insert("documents", [{"id": base + i, "tenant": run[:64], "embedding": vector(run, i, MILVUS_DIM)}
                                      for i in range(ROWS)], partition_name="tenant_a")
    client.flush("documents")
    return {"postgres_inserted": ROWS, "milvus_inserted": int(res["insert_count"])}


def search(run):
    out = {}
    with pg_connect() as conn, conn.cursor() as cur:
        q = literal(vector(run, 7, PG_DIM))
        cur.execute("SELECT content FROM documents ORDER BY embedding <=> %s::vector LIMIT 3", (q,))
        out["postgres_nearest"] = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT count(*) FROM documents WHERE metadata->>'run' = %s", (run,))
        out["postgres_rows"] = cur.fetchone()[0]
    client = milvus_client()
    client.load_collection("documents")
    base = run_id(run)
    hits = client.search("documents", data=[vector(run, 7, MILVUS_DIM)], limit=3, partition_names=["tenant_a"],
                         output_fields=["tenant"], consistency_level="Strong")
    out["milvus_nearest"] = [int(h["id"]) - base for h in hits[0]]
    rows = client.query("documents", filter="tenant == %s" % json.dumps(run[:64]), output_fields=["id"],
                        consistency_level="Strong", limit=16384)
    out["milvus_rows"] = len(rows)
    return out


def milvus_login():
    out = {}
    for name, token in (("wrong_token", "root:not-the-password"), ("no_token", "")):
        try:
            milvus_client(token).list_collections()
            out[name] = "accepted"
        except Exception as exc:  # the refusal pymilvus raises (MilvusException)
            out[name] = "refused: %s" % str(exc)[:200]
    return out


def destroy():
    with pg_connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE documents")
        cur.execute("SELECT to_regclass('public.documents') IS NULL")
        table_gone = cur.fetchone()[0]
    client = milvus_client()
    client.drop_collection("documents")
    return {"postgres_table_gone": table_gone, "milvus_collections": client.list_collections()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["insert", "search", "milvus-login", "destroy"])
    parser.add_argument("--run", default="")
    args = parser.parse_args()
    try:
        result = {"insert": lambda: insert(args.run), "search": lambda: search(args.run),
                  "milvus-login": milvus_login, "destroy": destroy}[args.action]()
    except Exception as exc:
        print(json.dumps({"error": "%s: %s" % (type(exc).__name__, str(exc)[:500])}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
