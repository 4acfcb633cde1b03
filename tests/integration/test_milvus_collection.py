"""aistack.infra.milvus_collection, and the milvus role's bootstrap that uses it, against a real
Milvus 2.3.5 server (the milvus_server fixture), through real ansible-playbook runs.

Every claim is checked with an independent pymilvus client (describe_collection, list_partitions,
query, get_load_state), never with the module's own output alone. To keep the runs few, one
playbook holds several tasks where nothing has to be checked between them.
"""
import itertools
import json
import logging
import os
import stat

import pytest

from lib.ansible_run import REPO, run_playbook

pymilvus = pytest.importorskip("pymilvus")
from pymilvus import DataType, MilvusClient  # noqa: E402

logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

DIM = 8
_names = itertools.count()
FIELDS = [
    {"name": "id", "type": "INT64", "is_primary": True},
    {"name": "tenant", "type": "VARCHAR", "max_length": 64},
    {"name": "tags", "type": "ARRAY", "element_type": "VARCHAR", "max_length": 16, "max_capacity": 4},
    {"name": "embedding", "type": "FLOAT_VECTOR", "dim": DIM},
]


def run_tasks(tasks, check=False, diff=False):
    """Run ``tasks`` (each {module args...} or a full task dict) in one play on localhost; return
    each task's result (ignore_errors, so every task runs)."""
    play = [{"hosts": "localhost", "gather_facts": False,
             "tasks": [dict(t, name="task %d" % i, ignore_errors=True) for i, t in enumerate(tasks)]}]
    proc = run_playbook(play, *((["--check"] if check else []) + (["--diff"] if diff else [])))
    try:
        out = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError("no JSON (rc=%s): %s %s" % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])) from exc
    results = [t["hosts"]["localhost"] for t in out["plays"][0]["tasks"]]
    assert len(results) == len(tasks), proc.stdout[-3000:]
    for res in results:
        res.setdefault("failed", False)
    return results


def collection_task(uri, name, **extra):
    args = dict(uri=uri, collection=name, fields=FIELDS, partitions=["tenant_a", "tenant_b"],
                consistency_level="Strong", description="chunks")
    args.update(extra)
    return {"aistack.infra.milvus_collection": args}


@pytest.fixture(scope="module")
def client(milvus_server):  # noqa: F811
    c = MilvusClient(uri=milvus_server, timeout=30)
    yield c
    c.close()


@pytest.fixture
def name(client):
    coll = "c%d_it" % next(_names)
    yield coll
    if client.has_collection(coll):
        client.drop_collection(coll)


def seeded(client, coll, partitions=("legacy",), load=False):
    """A collection made by pymilvus itself with FIELDS' schema and 10 rows in each partition."""
    schema = MilvusClient.create_schema(auto_id=False, description="chunks")
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("tenant", DataType.VARCHAR, max_length=64)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_length=16, max_capacity=4)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(coll, schema=schema, consistency_level="Strong")
    ids = itertools.count()
    for part in ("_default",) + tuple(partitions):
        if part != "_default":
            client.create_partition(coll, part)
        client.insert(coll, [{"id": next(ids), "tenant": part, "tags": ["x"], "embedding": [0.1 * i] * DIM}
                             for i in range(10)], partition_name=part)
    client.flush(coll)
    if load:
        ip = client.prepare_index_params()
        ip.add_index(field_name="embedding", index_type="FLAT", metric_type="L2")
        client.create_index(coll, ip)
        client.load_collection(coll)
    return next(ids)


def schema_of(client, coll):
    info = client.describe_collection(coll)
    return [(f["name"], f["type"].name, f.get("params", {}), f.get("is_primary", False)) for f in info["fields"]]


def count(client, coll):
    """Rows of ``coll``: counted by a query when it is loaded, from the flushed segments otherwise."""
    if client.get_load_state(coll)["state"].name != "Loaded":
        return client.get_collection_stats(coll)["row_count"]
    rows = client.query(coll, filter="id >= 0", output_fields=["count(*)"], consistency_level="Strong")
    return rows[0]["count(*)"]


def test_check_mode_then_create_exactly_then_not_changed(milvus_server, client, name):
    task = collection_task(milvus_server, name, db_name="itdb")
    check, = run_tasks([task], check=True, diff=True)
    assert not check["failed"], check.get("msg")
    assert check["changed"] is True
    assert check["actions"][0] == "create_database(db_name='itdb')"
    assert check["diff"]["before"] == {}
    assert "itdb" not in client.list_databases()  # check mode changed nothing

    first, second = run_tasks([task, task], diff=True)
    assert not first["failed"], first.get("msg")
    assert first["changed"] is True and first["actions"] == check["actions"]
    assert second["changed"] is False and second["actions"] == []
    assert second["diff"]["before"] == second["diff"]["after"] == first["collection"] == check["collection"]
    db = MilvusClient(uri=milvus_server, db_name="itdb", timeout=30)
    try:
        info = db.describe_collection(name)
        assert [(f["name"], f["type"].name, f.get("params", {}), f.get("is_primary", False)) for f in info["fields"]] == [
            ("id", "INT64", {}, True), ("tenant", "VARCHAR", {"max_length": 64}, False),
            ("tags", "ARRAY", {"max_length": 16, "max_capacity": 4}, False), ("embedding", "FLOAT_VECTOR", {"dim": DIM}, False)]
        assert info["fields"][2]["element_type"].name == "VARCHAR"
        assert info["consistency_level_name"] == "Strong" and info["description"] == "chunks"
        assert info["num_shards"] == 1 and info["enable_dynamic_field"] is False
        assert db.list_partitions(name) == ["_default", "tenant_a", "tenant_b"]
        assert name not in client.list_collections()  # in itdb, not in default
        db.drop_collection(name)
    finally:
        db.close()
    client.drop_database("itdb")


def test_schema_difference_fails_and_keeps_the_data_then_recreate(milvus_server, client, name):
    rows = seeded(client, name, partitions=("tenant_a",))
    before = schema_of(client, name)
    fields = [dict(f) for f in FIELDS]
    fields[3]["dim"] = 16
    fields[1]["max_length"] = 128
    differ = collection_task(milvus_server, name, fields=fields)
    in_check, real = run_tasks([dict(differ, check_mode=True), differ])
    for res in (in_check, real):
        assert res["failed"] is True and res["changed"] is False
        assert "field tenant: max_length is 64 on the server, 128 requested" in res["msg"]
        assert "field embedding: dim is 8 on the server, 16 requested" in res["msg"]
        assert res["differences"] == [{"key": "field tenant: max_length", "current": 64, "requested": 128},
                                      {"key": "field embedding: dim", "current": 8, "requested": 16}]
    # nothing changed: same schema, same rows, and tenant_b (requested) was not created either
    assert schema_of(client, name) == before
    assert count(client, name) == rows
    assert client.list_partitions(name) == ["_default", "tenant_a"]

    recreated, = run_tasks([collection_task(milvus_server, name, fields=fields, recreate="on_change")])
    assert not recreated["failed"], recreated.get("msg")
    assert [a.split("(")[0] for a in recreated["actions"]] == [
        "drop_collection", "create_collection", "create_partition", "create_partition"]
    info = client.describe_collection(name)
    assert info["fields"][3]["params"] == {"dim": 16} and info["fields"][1]["params"] == {"max_length": 128}
    assert client.list_partitions(name) == ["_default", "tenant_a", "tenant_b"]
    assert client.get_collection_stats(name)["row_count"] == 0


def test_missing_partition_created_others_kept_unless_exclusive_then_absent(milvus_server, client, name):
    rows = seeded(client, name, partitions=("legacy",), load=True)
    added, = run_tasks([collection_task(milvus_server, name, partitions=["tenant_a"])])
    assert not added["failed"], added.get("msg")
    assert added["actions"] == ["create_partition(collection=%r, partition='tenant_a')" % name]
    assert client.list_partitions(name) == ["_default", "legacy", "tenant_a"]
    assert count(client, name) == rows

    exclusive = collection_task(milvus_server, name, partitions=["tenant_a"], partitions_exclusive=True)
    absent = {"aistack.infra.milvus_collection": dict(uri=milvus_server, collection=name, state="absent"),
              "check_mode": True}
    dropped, absent_check = run_tasks([exclusive, absent])
    assert not dropped["failed"], dropped.get("msg")
    assert dropped["actions"] == ["release_partitions(collection=%r, partitions=['legacy'])" % name,
                                  "drop_partition(collection=%r, partition='legacy')" % name]
    assert absent_check["changed"] is True and absent_check["actions"] == ["drop_collection(collection=%r)" % name]
    assert client.list_partitions(name) == ["_default", "tenant_a"]
    assert count(client, name) == 10  # the _default partition's rows; legacy's went with it
    assert client.get_load_state(name)["state"].name == "Loaded"  # the rest stays loaded
    assert client.has_collection(name)  # absent in check mode dropped nothing

    absent_task = {"aistack.infra.milvus_collection": dict(uri=milvus_server, collection=name, state="absent")}
    gone, again = run_tasks([absent_task, absent_task])
    assert gone["changed"] is True and again["changed"] is False
    assert not client.has_collection(name)


def test_bad_input_changes_nothing(milvus_server, client, name):
    fields = [dict(f) for f in FIELDS]
    fields[3].pop("dim")
    res, = run_tasks([collection_task(milvus_server, name, fields=fields)])
    assert res["failed"] and "fields[3] (embedding): a FLOAT_VECTOR field needs dim" in res["msg"]
    assert not client.has_collection(name)


# --- The milvus role's bootstrap, run on this machine against the same server ---------------------

@pytest.fixture
def client_venv(tmp_path):
    """What the role expects at milvus_client_venv: bin/python with pymilvus (this checkout's venv)."""
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text('#!/bin/sh\nexec "%s" "$@"\n' % os.path.join(REPO, ".venv", "bin", "python"))
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return str(tmp_path)


def run_role_bootstrap(milvus_server, venv, *runs):
    """Run the role's bootstrap.yml once per item of ``runs`` (a milvus_collections list each), in one
    play. Returns [(failure message or None, {task name: changed} of that run)]."""
    port = int(milvus_server.rsplit(":", 1)[1])
    tasks = []
    for i, collections in enumerate(runs):
        tasks.append({"name": "run %d" % i, "block": [
            {"name": "include %d" % i,
             "ansible.builtin.include_role": {"name": "aistack.infra.milvus", "tasks_from": "bootstrap.yml"},
             "vars": {"milvus_bind_address": "127.0.0.1", "milvus_port": port, "milvus_client_venv": venv,
                      "milvus_collections": collections, "milvus_index_wait_timeout": 60}},
            {"name": "passed %d" % i, "ansible.builtin.set_fact": {"outcome_%d" % i: None}}],
            "rescue": [{"name": "failed %d" % i,
                        "ansible.builtin.set_fact": {"outcome_%d" % i: "{{ ansible_failed_result.msg }}"}}]})
    tasks.append({"name": "emit", "ansible.builtin.debug": {
        "msg": "{{ [%s] }}" % ", ".join("outcome_%d" % i for i in range(len(runs)))}})
    proc = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    out = json.loads(proc.stdout)["plays"][0]["tasks"]
    outcomes = [t for t in out if t["task"]["name"] == "emit"][0]["hosts"]["localhost"]["msg"]
    per_run, current = [], None
    for t in out:
        task_name = t["task"]["name"]
        if task_name.startswith("include "):
            current = {}
            per_run.append(current)
        elif task_name.startswith("aistack.infra.milvus : ") and current is not None:
            host = t["hosts"].get("localhost", {})
            current[task_name.split(" : ", 1)[1]] = bool(host.get("changed"))
    return list(zip(outcomes, per_run))


ROLE_SPEC = dict(fields=FIELDS, partitions=["tenant_a"], consistency_level="Strong",
                 index={"field": "embedding", "index_type": "HNSW", "metric_type": "L2",
                        "params": {"M": 8, "efConstruction": 32}})


def test_role_compares_every_collection_before_creating_any(milvus_server, client, client_venv):
    good, drifted = "c%d_role" % next(_names), "c%d_role" % next(_names)
    seeded(client, drifted, partitions=())
    try:
        wrong = dict(ROLE_SPEC, name=drifted, fields=FIELDS[:3] + [dict(FIELDS[3], dim=32)], partitions=["tenant_c"])
        (msg, _changed), = run_role_bootstrap(milvus_server, client_venv, [dict(ROLE_SPEC, name=good), wrong])
        assert msg.startswith("milvus: milvus_collections: collection %s (database default) differs from the "
                              "requested definition: field embedding: dim is 8 on the server, 32 requested" % drifted)
        assert not client.has_collection(good)  # the valid one was not created either
        assert client.list_partitions(drifted) == ["_default"]

        ok = [dict(ROLE_SPEC, name=good), dict(ROLE_SPEC, name=drifted)]
        (msg1, changed1), (msg2, changed2) = run_role_bootstrap(milvus_server, client_venv, ok, ok)
        assert msg1 is None and msg2 is None, (msg1, msg2)
        assert changed1["Create the database, collections and partitions"] is True
        assert changed1["Index the collections"] is True
        assert not any(changed2.values()), changed2  # the second run changes nothing
        assert client.list_partitions(good) == ["_default", "tenant_a"]
        assert client.list_partitions(drifted) == ["_default", "tenant_a"]
        assert client.describe_index(good, "embedding")["index_type"] == "HNSW"
        assert count(client, drifted) == 10
    finally:
        for coll in (good, drifted):
            if client.has_collection(coll):
                client.drop_collection(coll)
