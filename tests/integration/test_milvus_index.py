"""aistack.infra.milvus_index against a real Milvus 2.3.5 server (started by the milvus_server fixture).

Every test builds its own collection with pymilvus directly and checks the module's work with
independent pymilvus calls (describe_index / list_indexes / get_load_state), never with the
module's own output alone.
"""
import itertools
import logging

import numpy as np
import pytest

from lib.ansible_run import run_module

pymilvus = pytest.importorskip("pymilvus")
from pymilvus import DataType, MilvusClient  # noqa: E402

logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

DIM = 16
ROWS = 3000
HNSW = {"index_type": "HNSW", "metric_type": "COSINE", "params": {"M": 16, "efConstruction": 64}}
_names = itertools.count()


@pytest.fixture(scope="module")
def client(milvus_server):  # noqa: F811 (the fixture imported above)
    c = MilvusClient(uri=milvus_server, timeout=30)
    yield c
    c.close()


@pytest.fixture
def coll(client, request):
    """A fresh collection with an INT64 key, a FLOAT_VECTOR field `vec`, a VARCHAR `title`, ROWS flushed rows."""
    name = "t%d_%s" % (next(_names), request.node.name.split("[")[0][5:30])
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=32)
    client.create_collection(name, schema=schema)
    rng = np.random.default_rng(7)
    vectors = rng.random((ROWS, DIM), dtype=np.float32)
    client.insert(name, [{"id": i, "vec": vectors[i].tolist(), "title": "doc %d" % i} for i in range(ROWS)])
    client.flush(name)
    yield name
    client.drop_collection(name)


def args(uri, collection, **extra):
    out = dict(uri=uri, collection=collection, field="vec")
    out.update(extra)
    return out


def describe(client, collection):
    """The index on `vec`, read independently of the module: (definition without row counters) or None."""
    names = client.list_indexes(collection, field_name="vec")
    if not names:
        return None
    info = client.describe_index(collection, names[0])
    return dict((k, v) for k, v in info.items() if k not in ("total_rows", "indexed_rows", "pending_index_rows", "state"))


def load_state(client, collection):
    return client.get_load_state(collection)["state"].name


def create_directly(client, collection, index_type, metric_type, params):
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type=index_type, metric_type=metric_type, params=params)
    client.create_index(collection, ip)


def test_check_mode_creates_nothing(milvus_server, client, coll):  # noqa: F811
    res = run_module("milvus_index", args(milvus_server, coll, **HNSW), check=True, diff=True)
    assert not res["failed"], res.get("msg")
    assert res["changed"] is True
    assert res["actions"] == [
        "create_index(collection=%r, field='vec', index_name='vec', index_type='HNSW', metric_type='COSINE', "
        "params={'M': 16, 'efConstruction': 64})" % coll,
        "wait_for_index(collection=%r, index_name='vec', timeout=600)" % coll,
    ]
    assert res["diff"]["before"] == {}
    assert res["diff"]["after"]["params"] == {"M": 16, "efConstruction": 64}
    assert client.list_indexes(coll) == []
    assert load_state(client, coll) == "NotLoad"


def test_create_exact_definition_then_idempotent(milvus_server, client, coll):  # noqa: F811
    res = run_module("milvus_index", args(milvus_server, coll, **HNSW))
    assert not res["failed"], res.get("msg")
    assert res["changed"] is True
    assert [a.split("(")[0] for a in res["actions"]] == ["create_index", "wait_for_index"]
    assert describe(client, coll) == {"index_type": "HNSW", "metric_type": "COSINE", "M": "16", "efConstruction": "64",
                                      "field_name": "vec", "index_name": "vec"}
    # waited: every flushed row is indexed when the module returns
    info = client.describe_index(coll, "vec")
    assert info["state"] == "Finished" and info["indexed_rows"] == info["total_rows"] == ROWS
    assert res["index"]["indexed_rows"] == ROWS and res["index"]["state"] == "Finished"
    assert load_state(client, coll) == "NotLoad"

    again = run_module("milvus_index", args(milvus_server, coll, **HNSW), diff=True)
    assert not again["failed"], again.get("msg")
    assert again["changed"] is False
    assert again["actions"] == []
    assert again["diff"]["before"] == again["diff"]["after"]

    # parameters given as strings (as templating produces them) are the same definition
    as_strings = dict(HNSW, params={"M": "16", "efConstruction": "64"})
    assert run_module("milvus_index", args(milvus_server, coll, **as_strings))["changed"] is False


def test_changed_definition_with_recreate_never_fails_and_changes_nothing(milvus_server, client, coll):  # noqa: F811
    create_directly(client, coll, "HNSW", "COSINE", {"M": 16, "efConstruction": 64})
    before = describe(client, coll)
    changed = dict(HNSW, params={"M": 32, "efConstruction": 64})
    for check in (True, False):
        res = run_module("milvus_index", args(milvus_server, coll, **changed), check=check)
        assert res["failed"] is True
        assert "params.M: 16 (current) != 32 (requested)" in res["msg"]
        assert "recreate=on_change" in res["msg"]
        assert res["differences"] == [{"key": "params.M", "current": 16, "requested": 32}]
        assert describe(client, coll) == before
    metric = dict(HNSW, metric_type="L2")
    res = run_module("milvus_index", args(milvus_server, coll, **metric))
    assert res["failed"] and "metric_type: 'COSINE' (current) != 'L2' (requested)" in res["msg"]
    assert describe(client, coll) == before


def test_on_change_recreates_and_keeps_the_collection_loaded(milvus_server, client, coll):  # noqa: F811
    res = run_module("milvus_index", args(milvus_server, coll, load=True, **HNSW))
    assert not res["failed"], res.get("msg")
    assert load_state(client, coll) == "Loaded"
    assert res["index"]["loaded"] is True

    ivf = dict(index_type="IVF_FLAT", metric_type="L2", params={"nlist": 64}, recreate="on_change")
    check = run_module("milvus_index", args(milvus_server, coll, **ivf), check=True)
    assert check["changed"] is True
    assert describe(client, coll)["index_type"] == "HNSW" and load_state(client, coll) == "Loaded"

    res = run_module("milvus_index", args(milvus_server, coll, **ivf), diff=True)
    assert not res["failed"], res.get("msg")
    assert res["changed"] is True
    assert [a.split("(")[0] for a in res["actions"]] == [
        "release_collection", "drop_index", "create_index", "wait_for_index", "load_collection"]
    assert res["actions"] == [a for a in check["actions"]]  # check mode predicted exactly this
    assert describe(client, coll) == {"index_type": "IVF_FLAT", "metric_type": "L2", "nlist": "64",
                                      "field_name": "vec", "index_name": "vec"}
    assert load_state(client, coll) == "Loaded"
    assert res["diff"]["before"]["index_type"] == "HNSW" and res["diff"]["after"]["index_type"] == "IVF_FLAT"
    # a search works on the rebuilt index
    hits = client.search(coll, data=[[0.5] * DIM], limit=3, search_params={"metric_type": "L2", "params": {"nprobe": 8}})
    assert len(hits[0]) == 3

    again = run_module("milvus_index", args(milvus_server, coll, **ivf))
    assert again["changed"] is False and again["actions"] == []


def test_load_true_loads_an_unloaded_collection(milvus_server, client, coll):  # noqa: F811
    create_directly(client, coll, "HNSW", "COSINE", {"M": 16, "efConstruction": 64})
    assert load_state(client, coll) == "NotLoad"
    check = run_module("milvus_index", args(milvus_server, coll, load=True, **HNSW), check=True)
    assert check["changed"] is True and check["actions"] == ["load_collection(collection=%r)" % coll]
    assert load_state(client, coll) == "NotLoad"
    res = run_module("milvus_index", args(milvus_server, coll, load=True, **HNSW))
    assert res["changed"] is True and res["actions"] == ["load_collection(collection=%r)" % coll]
    assert load_state(client, coll) == "Loaded"
    assert run_module("milvus_index", args(milvus_server, coll, load=True, **HNSW))["changed"] is False


def test_explicit_index_name_is_part_of_the_definition(milvus_server, client, coll):  # noqa: F811
    create_directly(client, coll, "HNSW", "COSINE", {"M": 16, "efConstruction": 64})  # server names it "vec"
    res = run_module("milvus_index", args(milvus_server, coll, index_name="vec_hnsw", **HNSW))
    assert res["failed"] and "index_name: 'vec' (current) != 'vec_hnsw' (requested)" in res["msg"]
    res = run_module("milvus_index", args(milvus_server, coll, index_name="vec_hnsw", recreate="on_change", **HNSW))
    assert not res["failed"], res.get("msg")
    assert client.list_indexes(coll) == ["vec_hnsw"]


def test_state_absent_drops_the_index(milvus_server, client, coll):  # noqa: F811
    run_module("milvus_index", args(milvus_server, coll, load=True, **HNSW))
    assert load_state(client, coll) == "Loaded"
    check = run_module("milvus_index", args(milvus_server, coll, state="absent"), check=True)
    assert check["changed"] is True
    assert check["actions"] == ["release_collection(collection=%r)" % coll,
                                "drop_index(collection=%r, index_name='vec')" % coll]
    assert client.list_indexes(coll) == ["vec"] and load_state(client, coll) == "Loaded"
    res = run_module("milvus_index", args(milvus_server, coll, state="absent"), diff=True)
    assert res["changed"] is True and res["actions"] == check["actions"]
    assert res["diff"]["after"] == {} and res["diff"]["before"]["index_type"] == "HNSW"
    assert client.list_indexes(coll) == []
    assert load_state(client, coll) == "NotLoad"
    again = run_module("milvus_index", args(milvus_server, coll, state="absent"))
    assert again["changed"] is False and again["actions"] == []


# Argument-spec-only cases (unknown index type, missing metric_type, token with user...) are in the unit tests.
BAD = [
    ("missing collection", dict(collection="no_such_collection"), "collection 'no_such_collection' does not exist"),
    ("missing field", dict(field="nope"), "field 'nope' does not exist in collection"),
    ("scalar field", dict(field="title"), "field 'title' of collection"),
    ("unknown metric", dict(metric_type="EUCLID"), "value of metric_type must be one of: L2, IP, COSINE"),
    ("metric for binary vectors", dict(metric_type="HAMMING"), "metric_type HAMMING cannot be used on field 'vec'"),
    ("M out of range", dict(params={"M": 1, "efConstruction": 64}),
     "params.M for index_type HNSW must be an integer from 2 to 2048, got 1"),
    ("unknown param", dict(params={"M": 16, "efConstruction": 64, "ef": 10}),
     "unknown parameter(s) ef for index_type HNSW; allowed: M"),
    ("IVF_PQ m must divide dim", dict(index_type="IVF_PQ", metric_type="L2", params={"nlist": 8, "m": 3}),
     "params.m=3 for IVF_PQ must divide the field's dimension 16; allowed: 1, 2, 4, 8, 16"),
    ("DiskANN on the lite build", dict(index_type="DISKANN", metric_type="L2", params={}),
     "index_type DISKANN is not available on this server (v2.3.5-lite"),
]


@pytest.fixture(scope="module")
def indexed_coll(client):
    """One collection with an IVF_FLAT index, shared by the bad-input cases (none of them may change it)."""
    name = "bad_inputs"
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=32)
    client.create_collection(name, schema=schema)
    client.insert(name, [{"id": i, "vec": [float(i % 7)] * DIM, "title": "t"} for i in range(200)])
    client.flush(name)
    create_directly(client, name, "IVF_FLAT", "L2", {"nlist": 32})
    yield name
    client.drop_collection(name)


@pytest.mark.parametrize("case,override,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_before_any_change(milvus_server, client, indexed_coll, case, override, message):  # noqa: F811
    coll = indexed_coll
    before = describe(client, coll)
    a = args(milvus_server, coll, recreate="on_change", **HNSW)
    a.update(override)
    res = run_module("milvus_index", a)
    assert res["failed"] is True, case
    assert message in res["msg"], (case, res["msg"])
    assert not res.get("changed")
    assert describe(client, coll) == before, case
    assert load_state(client, coll) == "NotLoad"


def test_unreachable_server_is_a_clear_error():
    res = run_module("milvus_index", dict(uri="http://127.0.0.1:9", timeout=2, collection="c", field="vec", **HNSW))
    assert res["failed"] is True
    assert res["msg"].startswith("cannot connect to Milvus at http://127.0.0.1:9")
