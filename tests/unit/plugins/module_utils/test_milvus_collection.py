"""Unit tests for module_utils/_milvus_collection.py: validation, comparison and the planned API calls.

``FakeCollectionServer`` mimics the MilvusClient calls the manager makes, with the shapes a real
Milvus 2.3.5 describes back (checked against one: DataType members, params dicts, num_shards,
consistency_level_name, a partition must be released before it is dropped). Its
create_collection reads the real pymilvus CollectionSchema that build_schema() produces, so the
schema round trip is the library's own. Real-server behaviour: tests/integration/test_milvus_collection.py.
"""
import copy

import pytest

from pymilvus import DataType

from ansible_collections.aistack.infra.plugins.module_utils._milvus_collection import (
    MilvusCollectionError,
    MilvusCollectionManager,
    current_definition,
    differences,
    format_differences,
    normalize_request,
)


class FakeError(Exception):
    def __init__(self, message):
        super(FakeError, self).__init__(message)
        self.message = message


class FakeCollectionServer(object):
    """The server's state: databases -> collections -> (describe dict, partitions, loaded partitions)."""

    MUTATING = ("create_database", "create_collection", "drop_collection", "create_partition", "drop_partition",
                "release_partitions")

    def __init__(self, version="v2.3.5-lite"):
        self.version = version
        self.dbs = {"default": {}}
        self.calls = []

    def client(self, db_name="default", **_kw):
        return FakeClient(self, db_name)

    def mutations(self):
        return [c for c in self.calls if c[0] in self.MUTATING]

    def put(self, name, fields, db="default", partitions=("_default",), loaded=(), **info):
        described = dict(collection_name=name, auto_id=False, num_shards=1, description="",
                         enable_dynamic_field=False, consistency_level_name="Bounded", fields=fields)
        described.update(info)
        self.dbs[db][name] = dict(info=described, partitions=list(partitions), loaded=set(loaded))


class FakeClient(object):
    def __init__(self, server, db_name):
        self.s, self.db = server, db_name

    def _rec(self, name, *args):
        self.s.calls.append((name, self.db) + args)

    def _colls(self):
        if self.db not in self.s.dbs:
            raise FakeError("database not found[database=%s]" % self.db)
        return self.s.dbs[self.db]

    def get_server_version(self, **kw):
        return self.s.version

    def list_databases(self, **kw):
        return list(self.s.dbs)

    def create_database(self, name, **kw):
        self._rec("create_database", name)
        self.s.dbs[name] = {}

    def has_collection(self, name, **kw):
        return name in self._colls()

    def describe_collection(self, name, **kw):
        return copy.deepcopy(self._colls()[name]["info"])

    def list_partitions(self, name, **kw):
        return list(self._colls()[name]["partitions"])

    def create_collection(self, name, schema=None, shards_num=1, consistency_level="Bounded", **kw):
        self._rec("create_collection", name)
        fields = []
        for f in schema.fields:
            out = dict(name=f.name, description=f.description, type=f.dtype, params=dict(f.params))
            if f.is_primary:
                out.update(is_primary=True, auto_id=bool(f.auto_id))
            if f.dtype == DataType.ARRAY:
                out["element_type"] = f.element_type
            fields.append(out)
        self._colls()[name] = dict(info=dict(
            collection_name=name, auto_id=bool(schema.auto_id), num_shards=shards_num,
            description=schema.description, enable_dynamic_field=bool(schema.enable_dynamic_field),
            consistency_level_name=consistency_level, fields=fields), partitions=["_default"], loaded=set())

    def drop_collection(self, name, **kw):
        self._rec("drop_collection", name)
        del self._colls()[name]

    def create_partition(self, name, part, **kw):
        self._rec("create_partition", name, part)
        self._colls()[name]["partitions"].append(part)

    def release_partitions(self, name, parts, **kw):
        self._rec("release_partitions", name, tuple(parts))
        self._colls()[name]["loaded"].difference_update(parts)

    def drop_partition(self, name, part, **kw):
        self._rec("drop_partition", name, part)
        coll = self._colls()[name]
        if part in coll["loaded"]:
            raise FakeError("partition cannot be dropped, partition is loaded, please release it first")
        coll["partitions"].remove(part)

    def close(self):
        pass


FIELDS = [
    {"name": "id", "type": "INT64", "is_primary": True, "auto_id": True},
    {"name": "tenant", "type": "VARCHAR", "max_length": 64},
    {"name": "tags", "type": "ARRAY", "element_type": "VARCHAR", "max_length": 16, "max_capacity": 4},
    {"name": "embedding", "type": "FLOAT_VECTOR", "dim": 16},
]
REQUEST = dict(collection="documents", db_name="default", fields=FIELDS, partitions=["tenant_a", "tenant_b"],
               consistency_level="Strong", enable_dynamic_field=False, recreate="never", state="present")
CREATE = ("create_collection(collection='documents', fields=['id INT64 primary auto_id', 'tenant VARCHAR(64)', "
          "'tags ARRAY<VARCHAR(16)>[4]', 'embedding FLOAT_VECTOR(16)'], enable_dynamic_field=False, shards_num=1, "
          "consistency_level='Strong')")


def req(**changes):
    out = copy.deepcopy(REQUEST)
    out.update(changes)
    return out


def with_field(index, **changes):
    fields = copy.deepcopy(FIELDS)
    fields[index].update(changes)
    return [dict((k, v) for k, v in f.items() if v is not None) for f in fields]


@pytest.fixture
def server():
    return FakeCollectionServer()


def run(server, params, check=False):
    manager = MilvusCollectionManager(params, check_mode=check, connect_fn=server.client)
    return manager.run()


# ---- validation: every case fails before the server is contacted --------------------------------

def _refuse(**overrides):
    raise AssertionError("the server was contacted")


BAD = {
    "unknown-type": (dict(fields=with_field(1, type="TEXTBLOB")),
                     "fields[1] (tenant): type 'TEXTBLOB' is not supported; allowed: BOOL, INT8"),
    "vector-without-dim": (dict(fields=with_field(3, dim=None)),
                           "fields[3] (embedding): a FLOAT_VECTOR field needs dim"),
    "dim-zero": (dict(fields=with_field(3, dim=0)), "fields[3] (embedding): dim must be an integer from 1 to 32768, got 0"),
    "binary-dim": (dict(fields=with_field(3, type="BINARY_VECTOR", dim=12)),
                   "dim of a BINARY_VECTOR field must be a multiple of 8, got 12"),
    "dim-on-scalar": (dict(fields=with_field(1, dim=8)), "fields[1] (tenant): dim is only for the vector types"),
    "two-primaries": (dict(fields=with_field(1, is_primary=True)),
                      "fields: exactly one field needs is_primary: true (found 2: id, tenant)"),
    "no-primary": (dict(fields=with_field(0, is_primary=False, auto_id=None)),
                   "fields: exactly one field needs is_primary: true (found 0)"),
    "float-primary": (dict(fields=with_field(0, type="FLOAT")),
                      "fields[0] (id): a primary key must be INT64 or VARCHAR, not FLOAT"),
    "auto-id-not-primary": (dict(fields=with_field(1, auto_id=True)),
                            "fields[1] (tenant): auto_id is only for the primary key field"),
    "varchar-without-length": (dict(fields=with_field(1, max_length=None)),
                               "fields[1] (tenant): a VARCHAR field needs max_length (1 to 65535)"),
    "varchar-too-long": (dict(fields=with_field(1, max_length=70000)),
                         "fields[1] (tenant): max_length must be an integer from 1 to 65535, got 70000"),
    "length-on-int": (dict(fields=with_field(0, max_length=8)),
                      "fields[0] (id): max_length is only for VARCHAR fields (and ARRAY of VARCHAR), not INT64"),
    "array-without-element-type": (dict(fields=with_field(2, element_type=None)),
                                   "fields[2] (tags): an ARRAY field needs element_type, one of BOOL"),
    "array-of-json": (dict(fields=with_field(2, element_type="JSON")), "an ARRAY field needs element_type"),
    "array-without-capacity": (dict(fields=with_field(2, max_capacity=None)),
                               "fields[2] (tags): an ARRAY field needs max_capacity (1 to 4096)"),
    "array-varchar-without-length": (dict(fields=with_field(2, max_length=None)),
                                     "fields[2] (tags): a ARRAY of VARCHAR field needs max_length"),
    "capacity-on-scalar": (dict(fields=with_field(1, max_capacity=3)),
                           "fields[1] (tenant): max_capacity is only for ARRAY fields, not VARCHAR"),
    "repeated-field": (dict(fields=with_field(1, name="id", is_primary=False)),
                       "fields: field names must be unique; repeated: id"),
    "field-name": (dict(fields=with_field(1, name="2nd")), "fields[1] (2nd): name must be letters, digits and _"),
    "no-vector": (dict(fields=FIELDS[:3]), "fields: a collection needs a vector field"),
    "no-fields": (dict(fields=[]), "fields: a collection needs at least a primary key field and a vector field"),
    "collection-name": (dict(collection="my-docs"), "collection 'my-docs': the name must be letters, digits and _"),
    "db-name": (dict(db_name="rag-db"), "db_name 'rag-db': the name must be letters"),
    "partition-default": (dict(partitions=["_default"]), "partitions: '_default' is not a valid partition name"),
    "partition-name": (dict(partitions=["tenant a"]), "partitions: 'tenant a' is not a valid partition name"),
    "partitions-repeated": (dict(partitions=["a", "a"]), "partitions: partition names must be unique; repeated: a"),
    "shards": (dict(shards_num=0), "collection documents: shards_num must be an integer from 1 to 64, got 0"),
    "consistency": (dict(consistency_level="Eventual"), "consistency_level 'Eventual' is not supported; allowed: Strong"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_before_contacting_the_server(case):
    changes, message = BAD[case]
    manager = MilvusCollectionManager(req(**changes), connect_fn=_refuse)
    with pytest.raises(MilvusCollectionError) as err:
        manager.run()
    assert message in err.value.msg
    assert manager.actions == []


def test_types_are_case_insensitive_and_normalised():
    desired = normalize_request(req(fields=with_field(1, type="varchar"), consistency_level="strong"))
    assert desired["fields"][1] == {"name": "tenant", "type": "VARCHAR", "is_primary": False, "max_length": 64}
    assert desired["consistency_level"] == "Strong"
    assert desired["fields"][0] == {"name": "id", "type": "INT64", "is_primary": True, "auto_id": True}


@pytest.mark.parametrize("version,fields,message", [
    ("v2.3.5-lite", FIELDS + [{"name": "second", "type": "FLOAT_VECTOR", "dim": 8}],
     "fields: Milvus v2.3.5-lite allows one vector field per collection (2.4 or later for more); requested: embedding, second"),
    ("v2.3.5-lite", with_field(3, type="FLOAT16_VECTOR"),
     "field embedding: type FLOAT16_VECTOR needs Milvus 2.4 or later; the server is v2.3.5-lite"),
    ("v2.3.5-lite", with_field(3, type="SPARSE_FLOAT_VECTOR", dim=None), "type SPARSE_FLOAT_VECTOR needs Milvus 2.4"),
])
def test_what_the_server_cannot_hold_is_refused_before_any_change(version, fields, message):
    server = FakeCollectionServer(version=version)
    with pytest.raises(MilvusCollectionError) as err:
        run(server, req(fields=fields))
    assert message in err.value.msg
    assert server.mutations() == []


def test_two_vector_fields_on_a_2_4_server_are_accepted():
    server = FakeCollectionServer(version="v2.4.5")
    res = run(server, req(fields=FIELDS + [{"name": "second", "type": "FLOAT_VECTOR", "dim": 8}]), check=True)
    assert res["changed"] is True and server.mutations() == []


# ---- planning and running -----------------------------------------------------------------------

def test_check_mode_plans_then_the_run_creates_exactly_that_then_nothing(server):
    planned = run(server, req(), check=True)
    assert planned["changed"] is True
    assert planned["actions"] == [CREATE, "create_partition(collection='documents', partition='tenant_a')",
                                  "create_partition(collection='documents', partition='tenant_b')"]
    assert server.mutations() == []
    assert planned["diff"]["before"] == {}

    done = run(server, req())
    assert done["actions"] == planned["actions"]
    assert [c[0] for c in server.mutations()] == ["create_collection", "create_partition", "create_partition"]
    # what check mode predicted is what the server describes after the run
    assert done["collection"] == planned["collection"]
    assert done["collection"]["fields"][2] == {"name": "tags", "type": "ARRAY", "is_primary": False,
                                               "element_type": "VARCHAR", "max_capacity": 4, "max_length": 16,
                                               "description": ""}
    assert done["collection"]["partitions"] == ["_default", "tenant_a", "tenant_b"]
    assert done["collection"]["consistency_level"] == "Strong" and done["collection"]["shards_num"] == 1

    server.calls[:] = []
    again = run(server, req())
    assert again["changed"] is False and again["actions"] == [] and server.mutations() == []
    assert again["diff"]["before"] == again["diff"]["after"] == again["collection"]


def test_a_missing_database_is_created_first(server):
    planned = run(server, req(db_name="rag"), check=True)
    assert planned["actions"][:2] == ["create_database(db_name='rag')", CREATE]
    assert server.mutations() == [] and "rag" not in server.dbs
    run(server, req(db_name="rag"))
    assert "documents" in server.dbs["rag"] and "documents" not in server.dbs["default"]
    assert run(server, req(db_name="rag"))["changed"] is False


def _described(**changes):
    """describe_collection() of REQUEST's collection as a 2.3.5 server returns it."""
    server = FakeCollectionServer()
    run(server, req())
    info = server.dbs["default"]["documents"]["info"]
    info.update(changes)
    return info


def test_schema_difference_fails_showing_it_and_changes_nothing(server):
    info = _described(consistency_level_name="Bounded")
    info["fields"][3]["params"]["dim"] = 32
    info["fields"][1]["params"]["max_length"] = 128
    server.dbs["default"]["documents"] = dict(info=info, partitions=["_default"], loaded=set())
    for check in (True, False):
        with pytest.raises(MilvusCollectionError) as err:
            run(server, req(), check=check)
        msg = err.value.msg
        assert msg.startswith("collection documents (database default) differs from the requested definition: ")
        assert "field tenant: max_length is 128 on the server, 64 requested" in msg
        assert "field embedding: dim is 32 on the server, 16 requested" in msg
        assert "consistency_level is 'Bounded' on the server, 'Strong' requested" in msg
        assert "set recreate=on_change" in msg
        assert err.value.details["differences"] == [
            {"key": "field tenant: max_length", "current": 128, "requested": 64},
            {"key": "field embedding: dim", "current": 32, "requested": 16},
            {"key": "consistency_level", "current": "Bounded", "requested": "Strong"}]
        assert err.value.details["collection"]["fields"][3]["dim"] == 32
        assert server.mutations() == []  # not even the missing partitions


def test_recreate_on_change_drops_and_creates_the_requested_definition(server):
    info = _described()
    info["fields"][3]["params"]["dim"] = 32
    server.dbs["default"]["documents"] = dict(info=info, partitions=["_default", "tenant_a", "old"], loaded=set())
    planned = run(server, req(recreate="on_change"), check=True)
    assert planned["actions"] == ["drop_collection(collection='documents')", CREATE,
                                  "create_partition(collection='documents', partition='tenant_a')",
                                  "create_partition(collection='documents', partition='tenant_b')"]
    assert server.mutations() == []
    done = run(server, req(recreate="on_change"))
    assert done["actions"] == planned["actions"]
    assert done["collection"]["fields"][3]["dim"] == 16
    assert done["collection"]["partitions"] == ["_default", "tenant_a", "tenant_b"]
    assert done["diff"]["before"]["fields"][3]["dim"] == 32


@pytest.mark.parametrize("mutate,expected", [
    (lambda i: i["fields"].append({"name": "extra", "type": DataType.JSON, "params": {}}),
     "field extra: on the server, not requested"),
    (lambda i: i["fields"].pop(1), "field tenant: missing, requested"),
    (lambda i: i["fields"].insert(0, i["fields"].pop(1)),
     "field order is ['tenant', 'id', 'tags', 'embedding'] on the server, ['id', 'tenant', 'tags', 'embedding'] requested"),
    (lambda i: i.update(enable_dynamic_field=True), "enable_dynamic_field is True on the server, False requested"),
    (lambda i: i["fields"][0].update(auto_id=False), "field id: auto_id is False on the server, True requested"),
    (lambda i: i["fields"][1].update(type=DataType.JSON, params={}),
     "field tenant: type is 'JSON' on the server, 'VARCHAR' requested"),
    (lambda i: i["fields"][2].update(element_type=DataType.INT64),
     "field tags: element_type is 'INT64' on the server, 'VARCHAR' requested"),
])
def test_every_part_of_the_schema_is_compared(mutate, expected):
    info = _described()
    mutate(info)
    current = current_definition(info, ["_default"], "default")
    assert expected in format_differences(differences(normalize_request(req()), current))


def test_descriptions_shards_and_consistency_are_compared_only_when_given():
    info = _described(description="set elsewhere", num_shards=2)
    info["fields"][1]["description"] = "who owns the row"
    current = current_definition(info, ["_default"], "default")
    unset = dict(REQUEST)
    unset.pop("consistency_level")
    assert differences(normalize_request(unset), current) == []
    given = req(description="RAG chunks", shards_num=1, fields=with_field(1, description="tenant"))
    assert differences(normalize_request(given), current) == [
        ("field tenant: description", "who owns the row", "tenant"),
        ("shards_num", 2, 1), ("description", "set elsewhere", "RAG chunks")]


def test_missing_partitions_are_created_and_others_kept(server):
    run(server, req(partitions=["tenant_a", "legacy"]))
    server.calls[:] = []
    done = run(server, req())
    assert done["actions"] == ["create_partition(collection='documents', partition='tenant_b')"]
    assert done["collection"]["partitions"] == ["_default", "tenant_a", "legacy", "tenant_b"]


def test_partitions_exclusive_releases_and_drops_the_others(server):
    run(server, req(partitions=["tenant_a", "legacy"]))
    server.dbs["default"]["documents"]["loaded"] = {"_default", "tenant_a", "legacy"}
    server.calls[:] = []
    planned = run(server, req(partitions_exclusive=True), check=True)
    assert planned["actions"] == ["create_partition(collection='documents', partition='tenant_b')",
                                  "release_partitions(collection='documents', partitions=['legacy'])",
                                  "drop_partition(collection='documents', partition='legacy')"]
    assert planned["collection"]["partitions"] == ["_default", "tenant_a", "tenant_b"]
    assert server.mutations() == []
    done = run(server, req(partitions_exclusive=True))
    assert done["actions"] == planned["actions"]
    assert server.dbs["default"]["documents"]["partitions"] == ["_default", "tenant_a", "tenant_b"]
    assert server.dbs["default"]["documents"]["loaded"] == {"_default", "tenant_a"}


def test_a_failing_call_reports_the_calls_made_before_it(server):
    run(server, req(partitions=[]))

    def broken(*args, **kwargs):
        raise FakeError("partition number (4096) exceeds max configuration (4096)")

    original = server.client

    def client(**kw):
        c = original(**kw)
        c.create_partition = broken
        return c
    manager = MilvusCollectionManager(req(), connect_fn=client)
    with pytest.raises(MilvusCollectionError) as err:
        manager.run()
    assert err.value.msg == "create_partition failed: partition number (4096) exceeds max configuration (4096)"
    assert err.value.details["actions"] == []


def test_absent_drops_the_collection_once(server):
    run(server, req())
    params = dict(collection="documents", db_name="default", state="absent")
    planned = run(server, params, check=True)
    assert planned["changed"] is True and planned["actions"] == ["drop_collection(collection='documents')"]
    assert "documents" in server.dbs["default"]
    done = run(server, params)
    assert done["actions"] == planned["actions"] and "documents" not in server.dbs["default"]
    assert done["diff"]["before"]["name"] == "documents" and done["collection"] == {}
    again = run(server, params)
    assert again["changed"] is False and again["actions"] == []
    # an absent database is absent too, and is not created
    assert run(server, dict(params, db_name="nowhere"))["changed"] is False and "nowhere" not in server.dbs
