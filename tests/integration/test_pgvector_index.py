"""aistack.infra.pgvector_index against a real PostgreSQL 18 + pgvector 0.8 server.

The module runs through real ansible-playbook (lib.ansible_run); every claim about the server is
checked with an independent psycopg2 connection (pg_indexes, pg_get_indexdef, pg_index).
"""
import numpy as np
import pytest

from lib.ansible_run import run_module
from lib.pg_server import pg_connect  # the pg_server fixture comes from tests/conftest.py

MODULE = "pgvector_index"


@pytest.fixture(scope="module")
def db(pg_server):  # noqa: F811
    conn = pg_connect(pg_server)
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield conn
    conn.close()


def sql(conn, query, args=None):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall() if cur.description else None


def make_table(conn, name, dims=8, rows=200, extra=""):
    sql(conn, 'DROP TABLE IF EXISTS "%s" CASCADE' % name)
    sql(conn, 'CREATE TABLE "%s" (id serial PRIMARY KEY, cat int, title text, embedding vector(%d), '
              'half halfvec(%d)%s)' % (name, dims, dims, extra))
    sql(conn, 'INSERT INTO "%s" (cat, title, embedding, half) '
              'SELECT g %% 5, \'t\' || g, v::vector, v::halfvec FROM generate_series(1, %d) g, '
              'LATERAL (SELECT array_agg(((g * d) %% 97)::real / 97) AS v FROM generate_series(1, %d) d) s'
              % (name, rows, dims))


def indexes(conn, table):
    """{name: indexdef} from pg_indexes, the independent view of what exists."""
    return dict(sql(conn, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                          "AND tablename = %s AND indexname <> %s", (table, table + "_pkey")))


def index_state(conn, name):
    row = sql(conn, "SELECT c.oid, pg_get_indexdef(c.oid), i.indisvalid FROM pg_class c "
                    "JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = %s", (name,))
    return row[0] if row else None


def args(pg_server, **kw):  # noqa: F811
    out = dict(pg_server)
    out.update(kw)
    return out


def test_hnsw_check_create_idempotent(pg_server, db):  # noqa: F811
    make_table(db, "docs_hnsw")
    params = args(pg_server, table="docs_hnsw", column="embedding", method="hnsw", m=8, ef_construction=32)
    expected_create = ('CREATE INDEX CONCURRENTLY "docs_hnsw_embedding_hnsw_idx" ON "public"."docs_hnsw" '
                       'USING hnsw ("embedding" "public"."vector_l2_ops") WITH (m = 8, ef_construction = 32)')

    check = run_module(MODULE, params, check=True)
    assert not check["failed"], check.get("msg")
    assert check["changed"] is True
    assert check["executed_queries"][-1] == expected_create
    assert indexes(db, "docs_hnsw") == {}, "check mode must not create the index"

    real = run_module(MODULE, params)
    assert not real["failed"], real.get("msg")
    assert real["changed"] is True
    assert real["executed_queries"] == check["executed_queries"]
    assert real["executed_queries"] == [
        "SET maintenance_work_mem = '64MB'",
        "SET max_parallel_maintenance_workers = '0'",
        expected_create,
    ]
    assert indexes(db, "docs_hnsw") == {
        "docs_hnsw_embedding_hnsw_idx":
            "CREATE INDEX docs_hnsw_embedding_hnsw_idx ON public.docs_hnsw USING hnsw (embedding vector_l2_ops) "
            "WITH (m='8', ef_construction='32')"}
    assert real["index"]["valid"] is True
    assert real["index"]["params"] == {"m": 8, "ef_construction": 32}
    assert real["build_seconds"] is not None and real["build_seconds"] >= 0
    assert real["build_settings"]["settings"] == {"maintenance_work_mem": "64MB",
                                                  "max_parallel_maintenance_workers": 0}
    assert real["build_settings"]["estimated_rows"] == 200

    again = run_module(MODULE, params)
    assert not again["failed"], again.get("msg")
    assert again["changed"] is False
    assert again["executed_queries"] == []


def test_changed_definition_never_fails_on_change_recreates(pg_server, db):  # noqa: F811
    make_table(db, "docs_change")
    base = args(pg_server, table="docs_change", column="embedding", name="docs_change_idx")
    first = run_module(MODULE, base)
    assert first["changed"] and not first["failed"], first.get("msg")
    oid, indexdef, _valid = index_state(db, "docs_change_idx")

    refused = run_module(MODULE, dict(base, opclass="vector_cosine_ops", m=24, ef_construction=64), diff=True)
    assert refused["failed"] is True
    assert "opclass: 'vector_l2_ops' -> 'vector_cosine_ops'" in refused["msg"]
    assert "'m': 16" in refused["msg"] and "'m': 24" in refused["msg"]
    assert "recreate: on_change" in refused["msg"]
    assert {d["key"] for d in refused["differences"]} == {"opclass", "params"}
    assert index_state(db, "docs_change_idx") == (oid, indexdef, True), "never must leave the index alone"

    changed = run_module(MODULE, dict(base, opclass="vector_cosine_ops", m=24, ef_construction=64,
                                      recreate="on_change"), diff=True)
    assert not changed["failed"], changed.get("msg")
    assert changed["changed"] is True
    assert changed["diff"]["before"]["opclass"] == "vector_l2_ops"
    assert changed["diff"]["after"]["opclass"] == "vector_cosine_ops"
    assert changed["diff"]["after"]["params"] == {"m": 24, "ef_construction": 64}
    statements = changed["executed_queries"]
    assert statements[-3].startswith('CREATE INDEX CONCURRENTLY "docs_change_idx_aisnew" ON "public"."docs_change"')
    assert statements[-2:] == ['DROP INDEX CONCURRENTLY "public"."docs_change_idx"',
                               'ALTER INDEX "public"."docs_change_idx_aisnew" RENAME TO "docs_change_idx"']
    new_oid, new_def, valid = index_state(db, "docs_change_idx")
    assert new_oid != oid and valid is True
    assert new_def == ("CREATE INDEX docs_change_idx ON public.docs_change USING hnsw (embedding vector_cosine_ops) "
                       "WITH (m='24', ef_construction='64')")
    assert set(indexes(db, "docs_change")) == {"docs_change_idx"}, "no temporary index may be left"

    # Same change back, without CONCURRENTLY: one transaction with SET LOCAL.
    back = run_module(MODULE, dict(base, recreate="on_change", concurrently=False))
    assert back["changed"] and not back["failed"], back.get("msg")
    assert back["executed_queries"][0].startswith("SET LOCAL maintenance_work_mem = ")
    assert not any("CONCURRENTLY" in q for q in back["executed_queries"])
    assert index_state(db, "docs_change_idx")[1] == indexdef


def test_invalid_leftover_is_rebuilt(pg_server, db):  # noqa: F811
    make_table(db, "docs_invalid")
    params = args(pg_server, table="docs_invalid", column="embedding")
    assert run_module(MODULE, params)["changed"]
    name = "docs_invalid_embedding_hnsw_idx"
    # What a failed CREATE INDEX CONCURRENTLY leaves: the index, marked invalid.
    sql(db, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", (name,))
    assert index_state(db, name)[2] is False

    check = run_module(MODULE, params, check=True)
    assert check["changed"] is True
    assert index_state(db, name)[2] is False, "check mode must not rebuild"

    fixed = run_module(MODULE, params)
    assert not fixed["failed"], fixed.get("msg")
    assert fixed["changed"] is True
    assert fixed["executed_queries"][-2:] == [
        'DROP INDEX CONCURRENTLY "public"."%s"' % name,
        'CREATE INDEX CONCURRENTLY "%s" ON "public"."docs_invalid" USING hnsw ("embedding" '
        '"public"."vector_l2_ops") WITH (m = 16, ef_construction = 64)' % name]
    assert any("invalid" in w for w in fixed.get("warnings", []))
    assert index_state(db, name)[2] is True
    assert run_module(MODULE, params)["changed"] is False


def test_failed_concurrent_build_leaves_nothing(pg_server, db):  # noqa: F811
    """A build the server rejects half-way (the where function raises on some rows) is cleaned up."""
    make_table(db, "docs_fail")
    sql(db, "CREATE OR REPLACE FUNCTION picky(i int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS "
            "$$ BEGIN IF i = 150 THEN RAISE EXCEPTION 'row 150 refused'; END IF; RETURN true; END $$")
    result = run_module(MODULE, args(pg_server, table="docs_fail", column="embedding", where="picky(id)"))
    assert result["failed"] is True
    assert "row 150 refused" in result["msg"]
    assert "invalid index it left was dropped" in result["msg"]
    assert indexes(db, "docs_fail") == {}


def test_ivfflat_partial_index(pg_server, db):  # noqa: F811
    make_table(db, "docs_ivf")
    # 40 rows match the predicate: 4 lists x 10 rows a list are enough to train it.
    params = args(pg_server, table="docs_ivf", column="embedding", method="ivfflat", lists=4, min_rows_per_list=10,
                  opclass="vector_ip_ops", where="cat = 3 AND title IS NOT NULL")
    check = run_module(MODULE, params, check=True)
    assert check["changed"] and indexes(db, "docs_ivf") == {}
    real = run_module(MODULE, params)
    assert not real["failed"], real.get("msg")
    assert real["training"]["rows"] == 40 and real["training"]["lists_source"] == "explicit"
    assert real["executed_queries"][-1] == ('COMMENT ON INDEX "public"."docs_ivf_embedding_ivfflat_idx" IS '
                                            "'aistack.infra.pgvector_index trained_rows=40 lists=4 "
                                            "lists_source=explicit'")
    assert real["executed_queries"][-2] == (
        'CREATE INDEX CONCURRENTLY "docs_ivf_embedding_ivfflat_idx" ON "public"."docs_ivf" USING ivfflat '
        '("embedding" "public"."vector_ip_ops") WITH (lists = 4) WHERE ((cat = 3) AND (title IS NOT NULL))')
    assert indexes(db, "docs_ivf") == {
        "docs_ivf_embedding_ivfflat_idx":
            "CREATE INDEX docs_ivf_embedding_ivfflat_idx ON public.docs_ivf USING ivfflat (embedding vector_ip_ops) "
            "WITH (lists='4') WHERE ((cat = 3) AND (title IS NOT NULL))"}
    assert real["index"]["where"] == "((cat = 3) AND (title IS NOT NULL))"
    # Written differently, same predicate: not a change.
    same = run_module(MODULE, dict(params, where="(cat=3) and (title is not null)"))
    assert same["changed"] is False and not same["failed"], same.get("msg")
    other = run_module(MODULE, dict(params, where="cat = 4 AND title IS NOT NULL"))
    assert other["failed"] and "where:" in other["msg"]
    assert "cat = 4" in other["msg"]


@pytest.mark.parametrize("method,opclass", [("hnsw", "vector_cosine_ops"), ("hnsw", "vector_ip_ops")])
def test_opclasses(pg_server, db, method, opclass):  # noqa: F811
    table = "docs_%s_%s" % (method, opclass.split("_")[1])
    make_table(db, table)
    params = args(pg_server, table=table, column="embedding", method=method, opclass=opclass)
    real = run_module(MODULE, params)
    assert real["changed"] and not real["failed"], real.get("msg")
    (indexdef,) = indexes(db, table).values()
    assert "USING %s (embedding %s)" % (method, opclass) in indexdef
    assert ("WITH (lists='100')" if method == "ivfflat" else "WITH (m='16', ef_construction='64')") in indexdef
    assert run_module(MODULE, params)["changed"] is False


def test_halfvec_column(pg_server, db):  # noqa: F811
    make_table(db, "docs_half", dims=16)
    params = args(pg_server, table="docs_half", column="half", name="docs_half_idx", opclass="halfvec_cosine_ops")
    wrong = run_module(MODULE, dict(params, opclass="vector_cosine_ops"))
    assert wrong["failed"] and "opclass: vector_cosine_ops is for vector columns" in wrong["msg"]
    assert "halfvec_cosine_ops" in wrong["msg"]
    real = run_module(MODULE, params)
    assert real["changed"] and not real["failed"], real.get("msg")
    assert indexes(db, "docs_half") == {
        "docs_half_idx": "CREATE INDEX docs_half_idx ON public.docs_half USING hnsw (half halfvec_cosine_ops) "
                         "WITH (m='16', ef_construction='64')"}
    assert real["build_settings"]["bytes_per_vector"] == 8 + 2 * 16


def test_absent(pg_server, db):  # noqa: F811
    make_table(db, "docs_drop")
    params = args(pg_server, table="docs_drop", column="embedding", method="ivfflat", lists=2)
    assert run_module(MODULE, params)["changed"]
    gone = dict(params, state="absent")
    check = run_module(MODULE, gone, check=True, diff=True)
    assert check["changed"] is True
    assert check["executed_queries"] == ['DROP INDEX CONCURRENTLY "public"."docs_drop_embedding_ivfflat_idx"']
    assert check["diff"]["before"]["method"] == "ivfflat" and check["diff"]["after"] == {}
    assert list(indexes(db, "docs_drop")) == ["docs_drop_embedding_ivfflat_idx"]
    real = run_module(MODULE, gone)
    assert real["changed"] is True and real["executed_queries"] == check["executed_queries"]
    assert indexes(db, "docs_drop") == {}
    assert run_module(MODULE, gone)["changed"] is False
    # Never drops what is not a vector index.
    refuse = run_module(MODULE, args(pg_server, name="docs_drop_pkey", state="absent"))
    assert refuse["failed"] and "btree" in refuse["msg"]
    assert index_state(db, "docs_drop_pkey") is not None


def test_explicit_build_settings(pg_server, db):  # noqa: F811
    make_table(db, "docs_settings", rows=50)
    params = args(pg_server, table="docs_settings", column="embedding", maintenance_work_mem="256MB",
                  max_parallel_maintenance_workers=1, concurrently=False)
    real = run_module(MODULE, params)
    assert not real["failed"], real.get("msg")
    assert real["executed_queries"][:3] == ["SET LOCAL maintenance_work_mem = '256MB'",
                                            "SET LOCAL max_parallel_maintenance_workers = '1'",
                                            "SET LOCAL min_parallel_table_scan_size = '0'"]
    assert real["build_settings"]["source"] == {"maintenance_work_mem": "explicit",
                                                "max_parallel_maintenance_workers": "explicit"}
    # SET LOCAL ended with the transaction: the server's setting is untouched for everyone else.
    assert sql(db, "SHOW maintenance_work_mem")[0][0] == "64MB"


def test_create_extension(pg_server, db):  # noqa: F811
    """A bit column needs no extension, so a fresh database shows create_extension end to end."""
    sql(db, "DROP DATABASE IF EXISTS ext_test")
    sql(db, "CREATE DATABASE ext_test")
    conn = pg_connect(dict(pg_server, db="ext_test"))
    try:
        sql(conn, "CREATE TABLE fp (id int, bits bit(64))")
        sql(conn, "INSERT INTO fp SELECT g, (g * 2654435761)::bit(64) FROM generate_series(1, 100) g")
        params = args(pg_server, db="ext_test", table="fp", column="bits", opclass="bit_hamming_ops")
        missing = run_module(MODULE, params)
        assert missing["failed"] and "create_extension: true" in missing["msg"]
        check = run_module(MODULE, dict(params, create_extension=True), check=True)
        assert check["executed_queries"][0] == "CREATE EXTENSION IF NOT EXISTS vector"
        assert sql(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'")[0][0] == 0
        real = run_module(MODULE, dict(params, create_extension=True))
        assert real["changed"] and not real["failed"], real.get("msg")
        assert sql(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")[0][0].startswith("0.8")
        assert sql(conn, "SELECT indexdef FROM pg_indexes WHERE tablename = 'fp'")[0][0] == (
            "CREATE INDEX fp_bits_hnsw_idx ON public.fp USING hnsw (bits bit_hamming_ops) "
            "WITH (m='16', ef_construction='64')")
    finally:
        conn.close()
        sql(db, "DROP DATABASE ext_test WITH (FORCE)")


# --- search quality: training, deferral, re-training, search settings, recall -------------------------------

def clustered(count, dims=16, clusters=12, seed=7, spread=0.15):
    """Vectors around ``clusters`` random centres (what embeddings of a few topics look like)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dims))
    picks = rng.integers(0, clusters, size=count)
    return (centres[picks] + rng.normal(scale=spread, size=(count, dims))).astype(np.float32)


def literal(vec):
    return "[" + ",".join("%.6f" % x for x in vec) + "]"


def empty_table(conn, name, dims=16):
    sql(conn, 'DROP TABLE IF EXISTS "%s" CASCADE' % name)
    sql(conn, 'CREATE TABLE "%s" (id bigserial PRIMARY KEY, embedding vector(%d))' % (name, dims))


def insert(conn, name, vectors):
    with conn.cursor() as cur:
        cur.executemany('INSERT INTO "%s" (embedding) VALUES (%%s::vector)' % name, [(literal(v),) for v in vectors])


def fetch_vectors(conn, name):
    rows = sql(conn, 'SELECT id, embedding::text FROM "%s" ORDER BY id' % name)
    ids = np.array([r[0] for r in rows])
    vecs = np.array([[float(x) for x in r[1].strip("[]").split(",")] for r in rows])
    return ids, vecs


def exact_top_k(ids, vecs, queries, k, metric):
    """Exact nearest neighbours computed here, in numpy: the independent side of every recall check."""
    if metric == "cosine":
        unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        qunit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        dist = 1 - qunit @ unit.T
    else:
        dist = ((queries[:, None, :] - vecs[None, :, :]) ** 2).sum(axis=2)
    return [set(ids[np.argsort(row, kind="stable")[:k]].tolist()) for row in dist]


def index_top_k(conn, name, queries, k, setting, value, operator):
    """The index's answers, through this test's own connection and SQL, the index forced."""
    out = []
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL %s = %s" % (setting, int(value)))
        for q in queries:
            cur.execute('SELECT id FROM "%s" ORDER BY embedding %s %%s::vector LIMIT %d' % (name, operator, k),
                        (literal(q),))
            out.append(set(r[0] for r in cur.fetchall()))
        cur.execute("ROLLBACK")
    return out


def independent_recall(conn, name, query_ids, k, setting, value, metric="l2"):
    ids, vecs = fetch_vectors(conn, name)
    position = dict((i, n) for n, i in enumerate(ids.tolist()))
    queries = vecs[[position[i] for i in query_ids]]
    truth = exact_top_k(ids, vecs, queries, k, metric)
    found = index_top_k(conn, name, queries, k, setting, value, "<=>" if metric == "cosine" else "<->")
    return float(np.mean([len(t & f) / float(len(t)) for t, f in zip(truth, found)]))


def index_comment(conn, name):
    row = sql(conn, "SELECT obj_description(%s::regclass, 'pg_class')", (name,))
    return row[0][0]


def test_seed_order_defers_then_builds_a_trained_index(pg_server, db):  # noqa: F811
    """The seed's order: empty table, index task, rows, index task again."""
    empty_table(db, "seed_docs")
    params = args(pg_server, table="seed_docs", column="embedding", method="ivfflat", opclass="vector_cosine_ops")
    first = run_module(MODULE, params)
    assert not first["failed"], first.get("msg")
    assert first["changed"] is False and first["deferred"] is True
    assert first["executed_queries"] == []
    assert indexes(db, "seed_docs") == {}, "an empty table must not get an untrained ivfflat index"
    warning = " ".join(first.get("warnings", []))
    assert "seed_docs has 0 rows" in warning and "fewer than the 50 needed" in warning
    assert "Run this task again once the table holds at least 50 rows" in warning
    assert first["training"]["lists"] == 1 and first["training"]["rows_needed"] == 50

    insert(db, "seed_docs", clustered(3000))
    second = run_module(MODULE, params)
    assert not second["failed"], second.get("msg")
    assert second["changed"] is True and second["deferred"] is False
    assert second["training"]["lists"] == 3 and second["training"]["trained_rows"] == 3000
    assert "lists: auto chose 3 for 3000 rows (rows / 1000, bounded to 1..32768)" in second["decisions"]
    probes = second["search_settings"]["ivfflat.probes"]
    assert probes == 2  # ceil(sqrt(3))
    (indexdef,) = indexes(db, "seed_docs").values()
    assert "USING ivfflat (embedding vector_cosine_ops) WITH (lists='3')" in indexdef
    assert index_comment(db, "seed_docs_embedding_ivfflat_idx") == (
        "aistack.infra.pgvector_index trained_rows=3000 lists=3 lists_source=auto")
    query_ids = [r[0] for r in sql(db, "SELECT id FROM seed_docs ORDER BY id LIMIT 100")]
    recall = independent_recall(db, "seed_docs", query_ids, 10, "ivfflat.probes", probes, metric="cosine")
    assert recall >= 0.95, recall

    third = run_module(MODULE, params)
    assert third["changed"] is False and third["executed_queries"] == [], third.get("msg")


def test_growth_past_the_factor_retrains_with_new_lists(pg_server, db):  # noqa: F811
    empty_table(db, "grow_docs")
    insert(db, "grow_docs", clustered(2000, seed=11))
    params = args(pg_server, table="grow_docs", column="embedding", method="ivfflat")
    built = run_module(MODULE, params)
    assert built["changed"] and built["training"]["lists"] == 2, built.get("msg")
    oid = index_state(db, "grow_docs_embedding_ivfflat_idx")[0]

    insert(db, "grow_docs", clustered(3000, seed=12))
    # Without the opt-in, a grown table keeps its index.
    kept = run_module(MODULE, params)
    assert kept["changed"] is False and kept["executed_queries"] == [], kept.get("msg")
    assert kept["training"]["rows"] == 5000 and kept["training"]["lists"] == 2

    grow = dict(params, retrain_growth_factor=2)
    check = run_module(MODULE, grow, check=True)
    assert check["changed"] is True
    assert any(d.startswith("retrain: the table grew from 2000 rows") for d in check["decisions"]), check["decisions"]
    assert index_state(db, "grow_docs_embedding_ivfflat_idx")[0] == oid, "check mode must not rebuild"
    assert "lists='2'" in index_state(db, "grow_docs_embedding_ivfflat_idx")[1]

    real = run_module(MODULE, grow)
    assert not real["failed"], real.get("msg")
    assert real["changed"] is True and real["executed_queries"] == check["executed_queries"]
    statements = real["executed_queries"]
    assert statements[-4].startswith('CREATE INDEX CONCURRENTLY "grow_docs_embedding_ivfflat_idx_aisnew"')
    assert "WITH (lists = 5)" in statements[-4]
    assert statements[-3:] == [
        'DROP INDEX CONCURRENTLY "public"."grow_docs_embedding_ivfflat_idx"',
        'ALTER INDEX "public"."grow_docs_embedding_ivfflat_idx_aisnew" RENAME TO "grow_docs_embedding_ivfflat_idx"',
        'COMMENT ON INDEX "public"."grow_docs_embedding_ivfflat_idx" IS '
        "'aistack.infra.pgvector_index trained_rows=5000 lists=5 lists_source=auto'"]
    new_oid, indexdef, valid = index_state(db, "grow_docs_embedding_ivfflat_idx")
    assert new_oid != oid and valid is True and "lists='5'" in indexdef
    assert set(indexes(db, "grow_docs")) == {"grow_docs_embedding_ivfflat_idx"}
    assert real["training"]["retrain_at_rows"] == 10000

    again = run_module(MODULE, grow)
    assert again["changed"] is False and again["executed_queries"] == [], again.get("msg")
    assert "no retrain: 5000 rows, the index was trained on 5000; rebuilt above 10000 rows" in again["decisions"]


def test_recall_figure_matches_an_independent_computation(pg_server, db):  # noqa: F811
    """Every row is a query (sample = table), so this test can compute the same figure on its own."""
    empty_table(db, "recall_docs")
    insert(db, "recall_docs", np.random.default_rng(3).normal(size=(600, 16)).astype(np.float32))
    params = args(pg_server, table="recall_docs", column="embedding", method="ivfflat", lists=12,
                  recall_check=True, recall_sample_size=600, recall_k=10)
    result = run_module(MODULE, params)
    assert not result["failed"], result.get("msg")
    recall = result["recall"]
    assert recall["measured"] is True and recall["sample_size"] == 600 and recall["k"] == 10
    assert recall["setting"] == "ivfflat.probes" and recall["value"] == 4  # ceil(sqrt(12))
    ids = [r[0] for r in sql(db, "SELECT id FROM recall_docs")]
    mine = independent_recall(db, "recall_docs", ids, 10, "ivfflat.probes", 4)
    assert 0.3 < mine < 1.0, "uniform random data at 4 of 12 lists must miss some neighbours: %s" % mine
    assert result["recall_at_k"] == pytest.approx(mine, abs=0.002)

    # min_recall: the smallest probes that reaches it is found and recommended.
    wanted = run_module(MODULE, dict(params, min_recall=0.99))
    assert not wanted["failed"], wanted.get("msg")
    tried = wanted["recall"]["tried"]
    assert [t["value"] for t in tried][:3] == [1, 2, 4]
    assert tried[-1]["recall_at_k"] >= 0.99 and all(t["recall_at_k"] < 0.99 for t in tried[:-1])
    assert wanted["search_settings"]["ivfflat.probes"] == tried[-1]["value"]
    value = tried[-1]["value"]
    assert independent_recall(db, "recall_docs", ids, 10, "ivfflat.probes", value) == pytest.approx(
        tried[-1]["recall_at_k"], abs=0.002)
    assert wanted["changed"] is False


def test_hnsw_recall_and_search_defaults(pg_server, db):  # noqa: F811
    empty_table(db, "hnsw_q")
    insert(db, "hnsw_q", clustered(800, seed=5))
    sql(db, "DROP ROLE IF EXISTS hnsw_reader")
    sql(db, "CREATE ROLE hnsw_reader")
    dbname = pg_server["db"]
    params = args(pg_server, table="hnsw_q", column="embedding", m=8, ef_construction=32, min_recall=0.95,
                  search_defaults_database=True, search_defaults_roles=["hnsw_reader"])

    def settings():
        return dict(sql(db, "SELECT coalesce(r.rolname, '-'), array_to_string(s.setconfig, ',') "
                            "FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole "
                            "WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)", (dbname,)))

    check = run_module(MODULE, params, check=True)
    assert check["changed"] is True and indexes(db, "hnsw_q") == {}
    assert check["recall"] == {"measured": False, "reason": "check mode: the index would be built first, so recall "
                                                            "is measured on the real run"}
    assert check["executed_queries"][-2:] == [
        "ALTER DATABASE \"%s\" SET hnsw.ef_search = '40'" % dbname,
        "ALTER ROLE \"hnsw_reader\" IN DATABASE \"%s\" SET hnsw.ef_search = '40'" % dbname]
    assert settings() == {}, "check mode must not set defaults"

    real = run_module(MODULE, params)
    assert not real["failed"], real.get("msg")
    assert real["recall"]["measured"] is True and real["recall_at_k"] >= 0.95
    ef = real["search_settings"]["hnsw.ef_search"]
    assert ef == real["recall"]["tried"][-1]["value"] and ef >= 10
    assert settings() == {"-": "hnsw.ef_search=%d" % ef, "hnsw_reader": "hnsw.ef_search=%d" % ef}
    ids = [r[0] for r in sql(db, "SELECT id FROM hnsw_q ORDER BY id LIMIT 100")]
    assert independent_recall(db, "hnsw_q", ids, 10, "hnsw.ef_search", ef) >= 0.95

    again = run_module(MODULE, params)
    assert again["changed"] is False and again["executed_queries"] == [], again.get("msg")
    assert any("already has hnsw.ef_search" in d for d in again["decisions"])
    # A new session of the role gets the default.
    sql(db, "ALTER ROLE hnsw_reader LOGIN PASSWORD 'reader-pass-123'")
    conn = pg_connect(dict(pg_server, login_user="hnsw_reader", login_password="reader-pass-123"))
    try:
        assert sql(conn, "SHOW hnsw.ef_search")[0][0] == str(ef)
    finally:
        conn.close()
        sql(db, "ALTER DATABASE \"%s\" RESET ALL" % dbname)
        sql(db, "DROP ROLE hnsw_reader")


def test_check_mode_reports_each_decision(pg_server, db):  # noqa: F811
    empty_table(db, "check_docs")
    params = args(pg_server, table="check_docs", column="embedding", method="ivfflat", retrain_growth_factor=2,
                  recall_check=True)
    deferred = run_module(MODULE, params, check=True)
    assert deferred["changed"] is False and deferred["deferred"] is True and deferred["executed_queries"] == []
    assert any(d.startswith("deferred: ivfflat index public.check_docs_embedding_ivfflat_idx not built")
               for d in deferred["decisions"])
    assert deferred["recall"] == {"measured": False, "reason": "no index to measure"}
    assert indexes(db, "check_docs") == {}

    insert(db, "check_docs", clustered(1500, seed=9))
    check = run_module(MODULE, params, check=True)
    assert check["changed"] is True and check["deferred"] is False
    assert check["decisions"][:2] == ["lists: auto chose 1 for 1500 rows (rows / 1000, bounded to 1..32768)",
                                      "create: index public.check_docs_embedding_ivfflat_idx does not exist"]
    assert ("recall: not measured in check mode (the index would be built first); the search setting below is "
            "the unmeasured recommendation") in check["decisions"]
    assert "search: ivfflat.probes = 1 (sqrt(lists) = sqrt(1))" in check["decisions"]
    assert check["executed_queries"][-1].endswith("'aistack.infra.pgvector_index trained_rows=1500 lists=1 "
                                                  "lists_source=auto'")
    assert indexes(db, "check_docs") == {}, "check mode must not build"

    real = run_module(MODULE, params)
    assert real["executed_queries"] == check["executed_queries"], real.get("msg")
    assert real["recall"]["measured"] is True and real["recall_at_k"] == 1.0  # one list: an exact scan
    # An existing index is measured in check mode too (reading only).
    check_again = run_module(MODULE, params, check=True)
    assert check_again["changed"] is False and check_again["recall_at_k"] == 1.0


# Parameter-only mistakes are covered one by one in the unit tests; here a sample of them plus every
# mistake that needs the server to be seen (column type and dimension, missing objects, the predicate).
BAD_INPUTS = [
    (dict(opclass="vector_euclid_ops"), "opclass"),
    (dict(method="ivfflat", lists=0), "lists: 0 is out of range; allowed values: 1..32768"),
    (dict(m=101), "m: 101 is out of range; allowed values: 2..100"),
    (dict(m=32, ef_construction=40), "ef_construction: 40 is too small for m=32; it must be at least 2 * m = 64"),
    (dict(column="title"), "column: public.docs_bad.title is of type text, not a pgvector type"),
    (dict(column="big"), "column: public.docs_bad.big has 2001 dimensions; hnsw indexes on vector columns allow "
                         "at most 2000"),
    (dict(column="nope"), "column: 'nope' does not exist in public.docs_bad; its vector columns: embedding, half, big"),
    (dict(table="no_such_table"), "table: public.no_such_table does not exist"),
    (dict(schema="no_such_schema"), "schema: 'no_such_schema' does not exist"),
    (dict(where="no_such_column > 1"), 'where: the server rejected the index definition: column "no_such_column"'),
    (dict(method="ivfflat", retrain_growth_factor=1.0), "retrain_growth_factor: 1.0 must be greater than 1"),
    (dict(method="ivfflat", retrain_growth_factor=0.5), "retrain_growth_factor: 0.5 must be greater than 1"),
    (dict(min_recall=0), "min_recall: 0.0 is outside (0, 1]"),
    (dict(min_recall=1.5), "min_recall: 1.5 is outside (0, 1]"),
    (dict(recall_check=True, recall_sample_size=201), "recall_sample_size: 201 is larger than the 200 rows"),
    (dict(lists="auto"), "lists: auto sizes the lists of an ivfflat index and applies to method=ivfflat only"),
    (dict(search_defaults_roles=["no_such_role"]), "search_defaults_roles: role(s) no_such_role do not exist"),
]


@pytest.mark.parametrize("bad,message", BAD_INPUTS, ids=[m.split(":")[0] for _b, m in BAD_INPUTS])
def test_bad_input_changes_nothing(pg_server, db, bad, message):  # noqa: F811
    if not sql(db, "SELECT 1 FROM pg_class WHERE relname = 'docs_bad'"):
        make_table(db, "docs_bad", extra=", big vector(2001)")
    before = sql(db, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
    params = args(pg_server, table="docs_bad", column="embedding")
    params.update(bad)
    result = run_module(MODULE, params)
    assert result["failed"] is True
    assert message in result["msg"]
    assert result.get("executed_queries", []) == []
    after = sql(db, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
    assert after == before
