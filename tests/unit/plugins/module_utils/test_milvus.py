"""Unit tests for module_utils/_milvus.py: validation, normalisation, comparison and the planned API calls.

``FakeMilvusClient`` mimics the MilvusClient calls the manager makes, with the behaviour measured
on a real Milvus 2.3.5 (parameters described back as strings, an index cannot be dropped while
the collection is loaded, one index per field, a collection cannot be loaded without an index).
The module's tests (tests/unit/plugins/modules/test_milvus_index.py) reuse it.
"""
import enum

import pytest

from ansible_collections.aistack.infra.plugins.module_utils import _milvus
from ansible_collections.aistack.infra.plugins.module_utils._milvus import (
    MilvusIndexError,
    MilvusIndexManager,
    canonical_params,
    compare_definitions,
    definition_from_describe,
    format_differences,
    parse_version,
    validate_params,
)


class DataType(enum.Enum):
    INT64 = 5
    VARCHAR = 21
    BINARY_VECTOR = 100
    FLOAT_VECTOR = 101
    SPARSE_FLOAT_VECTOR = 104


class LoadState(enum.Enum):
    NotExist = 0
    NotLoad = 1
    Loading = 2
    Loaded = 3


class FakeError(Exception):
    def __init__(self, message, code=65535):
        super(FakeError, self).__init__(message)
        self.message = message
        self.code = code


class _IndexParams(list):
    def add_index(self, field_name, index_type="", index_name="", **kwargs):
        params = dict(kwargs.pop("params", None) or {})
        params.update(kwargs)
        self.append(dict(field_name=field_name, index_type=index_type, index_name=index_name, params=params))


def _str(value):
    return str(value)  # what pymilvus/Milvus 2.3 send back: str(True) == 'True', str(16) == '16'


class FakeMilvusClient(object):
    """In-memory stand-in for pymilvus.MilvusClient (only the calls _milvus uses)."""

    def __init__(self, version="v2.3.5-lite", dim=16, kind=DataType.FLOAT_VECTOR, rows=1000, build_polls=0):
        self.version = version
        self.calls = []
        self.build_polls = build_polls  # describe_index calls before a new index reports every row built
        self.fail_create = None
        self.fail_state = None
        self.collections = {}
        self.add_collection("docs", dim=dim, kind=kind, rows=rows)

    def add_collection(self, name, dim=16, kind=DataType.FLOAT_VECTOR, rows=1000):
        vec = {"field_id": 101, "name": "vec", "type": kind, "params": {} if kind == DataType.SPARSE_FLOAT_VECTOR else {"dim": dim}}
        self.collections[name] = dict(
            fields=[{"field_id": 100, "name": "id", "type": DataType.INT64, "params": {}, "is_primary": True}, vec,
                    {"field_id": 102, "name": "title", "type": DataType.VARCHAR, "params": {"max_length": 64}}],
            index=None, loaded=False, rows=rows, polls_left=0)

    # helpers for tests
    def put_index(self, coll, index_type, metric_type, params, name="vec", loaded=False):
        c = self.collections[coll]
        c["index"] = dict(index_name=name, field_name="vec", index_type=index_type, metric_type=metric_type,
                          params=dict((k, _str(v)) for k, v in params.items()))
        c["loaded"] = loaded

    def _coll(self, name):
        if name not in self.collections:
            raise FakeError("collection not found[database=default][collection=%s]" % name, code=100)
        return self.collections[name]

    # the API
    def get_server_version(self, **kw):
        self.calls.append("get_server_version")
        return self.version

    def has_collection(self, name, timeout=None, **kw):
        self.calls.append("has_collection")
        return name in self.collections

    def list_collections(self, **kw):
        return list(self.collections)

    def describe_collection(self, name, timeout=None, **kw):
        self.calls.append("describe_collection")
        return {"collection_name": name, "fields": self._coll(name)["fields"]}

    def list_indexes(self, name, field_name="", **kw):
        self.calls.append("list_indexes")
        idx = self._coll(name)["index"]
        if idx and (not field_name or idx["field_name"] == field_name):
            return [idx["index_name"]]
        return []

    def describe_index(self, name, index_name, timeout=None, **kw):
        self.calls.append("describe_index")
        c = self._coll(name)
        idx = c["index"]
        if not idx or idx["index_name"] != index_name:
            return None
        info = dict(idx["params"])
        info.update(metric_type=idx["metric_type"], index_type=idx["index_type"], field_name=idx["field_name"],
                    index_name=idx["index_name"], total_rows=c["rows"], pending_index_rows=0)
        if self.fail_state:
            info.update(state="Failed", indexed_rows=0, index_state_fail_reason=self.fail_state)
        elif c["polls_left"] > 0:
            c["polls_left"] -= 1
            info.update(state="InProgress", indexed_rows=c["rows"] // 2)
        else:
            info.update(state="Finished", indexed_rows=c["rows"])
        return info

    def get_load_state(self, name, timeout=None, **kw):
        self.calls.append("get_load_state")
        return {"state": LoadState.Loaded if self._coll(name)["loaded"] else LoadState.NotLoad}

    def release_collection(self, name, timeout=None, **kw):
        self.calls.append("release_collection")
        self._coll(name)["loaded"] = False

    def load_collection(self, name, timeout=None, **kw):
        self.calls.append("load_collection")
        c = self._coll(name)
        if not c["index"]:
            raise FakeError("index not found[collection=%s]" % name, code=700)
        c["loaded"] = True

    def drop_index(self, name, index_name, timeout=None, **kw):
        self.calls.append("drop_index")
        c = self._coll(name)
        if c["loaded"]:
            raise FakeError("index cannot be dropped, collection is loaded, please release it first")
        if c["index"] and c["index"]["index_name"] == index_name:
            c["index"] = None

    def prepare_index_params(self):
        return _IndexParams()

    def create_index(self, name, index_params, timeout=None, sync=True, **kw):
        self.calls.append("create_index")
        c = self._coll(name)
        (param,) = index_params
        if self.fail_create:
            raise FakeError(self.fail_create)
        if c["index"]:
            raise FakeError("CreateIndex failed: creating multiple indexes on same field is not supported")
        params = dict(param["params"])
        metric = params.pop("metric_type")
        c["index"] = dict(index_name=param["index_name"] or param["field_name"], field_name=param["field_name"],
                          index_type=param["index_type"], metric_type=metric,
                          params=dict((k, _str(v)) for k, v in params.items()))
        c["polls_left"] = self.build_polls

    def close(self):
        pass


class FakeClock(object):
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def params(**kw):
    p = dict(uri="http://127.0.0.1:19530", token=None, user=None, password=None, db_name="default", secure=None,
             server_pem_path=None, server_name=None, ca_pem_path=None, client_pem_path=None, client_key_path=None,
             timeout=30.0, collection="docs", field="vec", index_name=None, index_type="HNSW", metric_type="COSINE",
             params={"M": 16, "efConstruction": 64}, recreate="never", load=False, wait_timeout=600, state="present")
    p.update(kw)
    return p


def manager(client, check_mode=False, **kw):
    clock = FakeClock()
    return MilvusIndexManager(params(**kw), check_mode=check_mode, client=client, sleep=clock.sleep, clock=clock)


# ----------------------------------------------------------------------------- pure functions

class TestValidateParams:
    def test_hnsw_values_are_typed(self):
        assert validate_params("HNSW", {"M": "16", "efConstruction": 200}) == {"M": 16, "efConstruction": 200}

    @pytest.mark.parametrize("value", [1, 2049, "x", True, 2.5])
    def test_hnsw_m_out_of_range_names_parameter_and_range(self, value):
        with pytest.raises(MilvusIndexError) as err:
            validate_params("HNSW", {"M": value, "efConstruction": 64})
        assert "params.M for index_type HNSW must be an integer from 2 to 2048, got %r" % (value,) == err.value.msg

    def test_required_parameters(self):
        with pytest.raises(MilvusIndexError, match=r"index_type HNSW requires efConstruction \(an integer from 1 to 2147483647\)"):
            validate_params("HNSW", {"M": 16})
        with pytest.raises(MilvusIndexError, match=r"index_type IVF_PQ requires m "):
            validate_params("IVF_PQ", {"nlist": 128})

    def test_unknown_parameter_lists_the_allowed_ones(self):
        with pytest.raises(MilvusIndexError) as err:
            validate_params("IVF_FLAT", {"nlist": 16, "nprobe": 8})
        assert err.value.msg == ("params: unknown parameter(s) nprobe for index_type IVF_FLAT; "
                                 "allowed: nlist (an integer from 1 to 65536, required)")

    def test_types_without_parameters(self):
        assert validate_params("FLAT", {}) == {}
        with pytest.raises(MilvusIndexError, match="it takes no build parameters"):
            validate_params("AUTOINDEX", {"M": 8})

    @pytest.mark.parametrize("nlist", [0, 65537, -1])
    def test_nlist_range(self, nlist):
        with pytest.raises(MilvusIndexError, match="params.nlist for index_type IVF_SQ8 must be an integer from 1 to 65536"):
            validate_params("IVF_SQ8", {"nlist": nlist})

    def test_ivf_pq_and_scann(self):
        assert validate_params("IVF_PQ", {"nlist": 16, "m": 4, "nbits": "8"}) == {"nlist": 16, "m": 4, "nbits": 8}
        with pytest.raises(MilvusIndexError, match="nbits .* from 1 to 64"):
            validate_params("IVF_PQ", {"nlist": 16, "m": 4, "nbits": 65})
        assert validate_params("SCANN", {"nlist": 8, "with_raw_data": "false"}) == {"nlist": 8, "with_raw_data": False}
        with pytest.raises(MilvusIndexError, match="with_raw_data .* must be true or false"):
            validate_params("SCANN", {"nlist": 8, "with_raw_data": "maybe"})

    def test_sparse_drop_ratio(self):
        assert validate_params("SPARSE_INVERTED_INDEX", {"drop_ratio_build": "0.2"}) == {"drop_ratio_build": 0.2}
        with pytest.raises(MilvusIndexError, match="up to \\(not including\\) 1.0"):
            validate_params("SPARSE_WAND", {"drop_ratio_build": 1})

    def test_choice_parameter(self):
        assert validate_params("GPU_CAGRA", {"build_algo": "nn_descent"}) == {"build_algo": "NN_DESCENT"}
        with pytest.raises(MilvusIndexError, match="one of IVF_PQ, NN_DESCENT"):
            validate_params("GPU_CAGRA", {"build_algo": "brute"})


class TestNormalisation:
    def test_describe_strings_become_typed(self):
        info = {"M": "16", "efConstruction": "64", "metric_type": "COSINE", "index_type": "HNSW", "field_name": "vec",
                "index_name": "vec", "total_rows": 10, "indexed_rows": 10, "pending_index_rows": 0, "state": "Finished"}
        assert definition_from_describe(info) == dict(index_name="vec", field="vec", index_type="HNSW",
                                                      metric_type="COSINE", params={"M": 16, "efConstruction": 64})

    def test_nested_json_params_of_newer_servers(self):
        info = {"index_type": "HNSW", "metric_type": "L2", "field_name": "v", "index_name": "i",
                "params": '{"M": "8", "efConstruction": "32", "metric_type": "L2", "index_type": "HNSW"}'}
        assert definition_from_describe(info)["params"] == {"M": 8, "efConstruction": 32}

    def test_bool_and_unknown_values(self):
        assert canonical_params("SCANN", {"nlist": "16", "with_raw_data": "True"}) == {"nlist": 16, "with_raw_data": True}
        expected = {"extra": 1.5, "flag": False, "name": "x"}
        assert canonical_params("HNSW", {"extra": "1.5", "flag": "false", "name": "x"}) == expected

    @pytest.mark.parametrize("text,expected", [("v2.3.5-lite", ((2, 3, 5), "lite")), ("2.4.0", ((2, 4, 0), "")),
                                               ("v2.2", ((2, 2, 0), "")), ("master", (None, ""))])
    def test_parse_version(self, text, expected):
        assert parse_version(text) == expected


class TestCompare:
    base = dict(index_name="vec", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 64})

    def test_equal(self):
        assert compare_definitions(dict(self.base), dict(self.base)) == []

    def test_every_part_is_compared(self):
        other = dict(index_name="v2", index_type="HNSW", metric_type="L2", params={"M": 32, "efConstruction": 64})
        diffs = compare_definitions(self.base, other)
        assert diffs == [("index_name", "vec", "v2"), ("metric_type", "COSINE", "L2"), ("params.M", 16, 32)]
        assert format_differences(diffs[1:]) == ("metric_type: 'COSINE' (current) != 'L2' (requested); "
                                                 "params.M: 16 (current) != 32 (requested)")
        assert compare_definitions(self.base, other, compare_name=False)[0][0] == "metric_type"

    def test_server_defaults_equal_unset(self):
        cur = dict(index_name="i", index_type="IVF_PQ", metric_type="L2", params={"nlist": 16, "m": 4})
        want = dict(cur, params={"nlist": 16, "m": 4, "nbits": 8})
        assert compare_definitions(cur, want) == []
        assert compare_definitions(cur, dict(cur, params={"nlist": 16, "m": 4, "nbits": 4})) == [("params.nbits", 8, 4)]

    def test_extra_param_on_server_is_a_difference(self):
        cur = dict(self.base, params={"M": 16, "efConstruction": 64, "mmap": True})
        assert compare_definitions(cur, self.base) == [("params.mmap", True, None)]


# ----------------------------------------------------------------------------- manager

class TestManagerPresent:
    def test_check_mode_plans_and_touches_nothing(self):
        fake = FakeMilvusClient()
        res = manager(fake, check_mode=True).run()
        assert res["changed"] is True
        assert res["actions"] == [
            "create_index(collection='docs', field='vec', index_name='vec', index_type='HNSW', metric_type='COSINE', "
            "params={'M': 16, 'efConstruction': 64})",
            "wait_for_index(collection='docs', index_name='vec', timeout=600)"]
        assert fake.collections["docs"]["index"] is None
        assert "create_index" not in fake.calls
        assert res["index"]["params"] == {"M": 16, "efConstruction": 64}

    def test_create_waits_and_is_then_idempotent(self):
        fake = FakeMilvusClient(build_polls=3)
        res = manager(fake).run()
        assert res["changed"] is True
        assert [a.split("(")[0] for a in res["actions"]] == ["create_index", "wait_for_index"]
        assert fake.collections["docs"]["index"]["params"] == {"M": "16", "efConstruction": "64"}
        assert res["index"]["indexed_rows"] == res["index"]["total_rows"] == 1000
        assert res["index"]["state"] == "Finished"
        again = manager(fake).run()
        assert again["changed"] is False and again["actions"] == []
        assert again["diff"]["before"] == again["diff"]["after"]

    def test_wait_timeout_reports_progress(self):
        fake = FakeMilvusClient(build_polls=10 ** 6)
        with pytest.raises(MilvusIndexError) as err:
            manager(fake, wait_timeout=5).run()
        assert "was not built within wait_timeout=5s: 500 of 1000 rows indexed (state InProgress)" in err.value.msg
        assert err.value.details["actions"][0].startswith("create_index(")

    def test_wait_zero_does_not_wait(self):
        fake = FakeMilvusClient(build_polls=10 ** 6)
        res = manager(fake, wait_timeout=0).run()
        assert [a.split("(")[0] for a in res["actions"]] == ["create_index"]

    def test_failed_build_is_reported(self):
        fake = FakeMilvusClient()
        fake.fail_state = "out of memory"
        with pytest.raises(MilvusIndexError, match="building index 'vec' on docs.vec failed: out of memory"):
            manager(fake).run()

    def test_difference_with_recreate_never_changes_nothing(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "HNSW", "COSINE", {"M": 8, "efConstruction": 64})
        for check in (True, False):
            with pytest.raises(MilvusIndexError) as err:
                manager(fake, check_mode=check).run()
            assert "params.M: 8 (current) != 16 (requested)" in err.value.msg
            assert err.value.details["differences"] == [dict(key="params.M", current=8, requested=16)]
        assert "drop_index" not in fake.calls and "create_index" not in fake.calls

    def test_on_change_releases_rebuilds_and_reloads(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "IVF_FLAT", "L2", {"nlist": 128}, loaded=True)
        planned = manager(fake, check_mode=True, recreate="on_change").run()
        res = manager(fake, recreate="on_change").run()
        assert res["changed"] is True
        assert res["actions"] == planned["actions"] == [
            "release_collection(collection='docs')",
            "drop_index(collection='docs', index_name='vec')",
            "create_index(collection='docs', field='vec', index_name='vec', index_type='HNSW', metric_type='COSINE', "
            "params={'M': 16, 'efConstruction': 64})",
            "wait_for_index(collection='docs', index_name='vec', timeout=600)",
            "load_collection(collection='docs')"]
        assert fake.collections["docs"]["loaded"] is True
        assert fake.collections["docs"]["index"]["index_type"] == "HNSW"
        assert res["diff"]["before"]["index_type"] == "IVF_FLAT" and res["diff"]["after"]["loaded"] is True

    def test_on_change_unloaded_collection_stays_unloaded(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "IVF_FLAT", "L2", {"nlist": 128})
        res = manager(fake, recreate="on_change").run()
        assert [a.split("(")[0] for a in res["actions"]] == ["drop_index", "create_index", "wait_for_index"]
        assert fake.collections["docs"]["loaded"] is False

    def test_failed_create_after_drop_restores_the_old_index(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "IVF_FLAT", "L2", {"nlist": 128}, loaded=True)
        mgr = manager(fake, recreate="on_change")
        real_create = fake.create_index
        attempts = []

        def create_once_failing(name, index_params, **kw):
            attempts.append(index_params[0]["index_type"])
            if len(attempts) == 1:
                raise FakeError("out of disk")
            return real_create(name, index_params, **kw)
        fake.create_index = create_once_failing
        with pytest.raises(MilvusIndexError) as err:
            mgr.run()
        assert err.value.msg.startswith("create_index failed: out of disk (code 65535)")
        assert "the previous index 'vec' was recreated; the collection was loaded again" in err.value.msg
        assert attempts == ["HNSW", "IVF_FLAT"]
        assert fake.collections["docs"]["index"]["params"] == {"nlist": "128"}
        assert fake.collections["docs"]["loaded"] is True

    def test_load_only(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "HNSW", "COSINE", {"M": 16, "efConstruction": 64})
        res = manager(fake, load=True).run()
        assert res["changed"] is True and res["actions"] == ["load_collection(collection='docs')"]
        assert manager(fake, load=True).run()["changed"] is False

    def test_index_name_default_accepts_any_name_explicit_does_not(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "HNSW", "COSINE", {"M": 16, "efConstruction": 64}, name="_default_idx_101")
        assert manager(fake).run()["changed"] is False
        with pytest.raises(MilvusIndexError, match="index_name: '_default_idx_101' \\(current\\) != 'vec' \\(requested\\)"):
            manager(fake, index_name="vec").run()

    def test_string_params_match_server_strings(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "HNSW", "COSINE", {"M": 16, "efConstruction": 64})
        assert manager(fake, params={"M": "16", "efConstruction": "64"}).run()["changed"] is False


class TestManagerValidation:
    def _fails(self, fake, match, **kw):
        with pytest.raises(MilvusIndexError, match=match):
            manager(fake, **kw).run()
        assert not {"create_index", "drop_index", "release_collection", "load_collection"} & set(fake.calls)

    def test_missing_collection(self):
        self._fails(FakeMilvusClient(), "collection 'nope' does not exist in database 'default'; create it first "
                                        "\\(collections: docs\\)", collection="nope")

    def test_missing_field(self):
        self._fails(FakeMilvusClient(), "field 'emb' does not exist in collection 'docs'; its fields are: id, title, vec",
                    field="emb")

    def test_scalar_field(self):
        self._fails(FakeMilvusClient(), "field 'title' of collection 'docs' is VARCHAR, not a vector field; "
                                        "vector fields: vec", field="title")

    def test_metric_must_suit_the_field(self):
        self._fails(FakeMilvusClient(), "metric_type HAMMING cannot be used on field 'vec' \\(FLOAT_VECTOR\\); "
                                        "allowed: L2, IP, COSINE", metric_type="HAMMING")
        binary = FakeMilvusClient(kind=DataType.BINARY_VECTOR)
        self._fails(binary, "metric_type COSINE cannot be used on field 'vec' \\(BINARY_VECTOR\\)",
                    index_type="BIN_FLAT", params={})
        assert manager(binary, index_type="BIN_IVF_FLAT", metric_type="JACCARD", params={"nlist": 8}).run()["changed"]

    def test_index_type_must_suit_the_field(self):
        self._fails(FakeMilvusClient(), "index_type BIN_FLAT cannot index field 'vec' \\(FLOAT_VECTOR\\); allowed for "
                                        "this field: AUTOINDEX, DISKANN, FLAT, ", index_type="BIN_FLAT", metric_type="L2",
                    params={})

    def test_substructure_only_with_bin_flat(self):
        self._fails(FakeMilvusClient(kind=DataType.BINARY_VECTOR), "SUBSTRUCTURE works only with index_type BIN_FLAT",
                    index_type="BIN_IVF_FLAT", metric_type="SUBSTRUCTURE", params={"nlist": 4})

    def test_unknown_names(self):
        self._fails(FakeMilvusClient(), "index_type 'HNSWX' is not supported; allowed values: FLAT, IVF_FLAT",
                    index_type="HNSWX")
        self._fails(FakeMilvusClient(), "metric_type 'EUCLID' is not supported; allowed values: L2, IP, COSINE",
                    metric_type="EUCLID")

    def test_lower_case_names_are_accepted(self):
        assert manager(FakeMilvusClient(), index_type="hnsw", metric_type="cosine").run()["changed"] is True

    def test_ivf_pq_m_must_divide_dim(self):
        self._fails(FakeMilvusClient(dim=12), "params.m=5 for IVF_PQ must divide the field's dimension 12; "
                                              "allowed: 1, 2, 3, 4, 6, 12",
                    index_type="IVF_PQ", metric_type="L2", params={"nlist": 8, "m": 5})

    def test_lite_server_cannot_build_diskann_or_gpu(self):
        self._fails(FakeMilvusClient(), "index_type DISKANN is not available on this server \\(v2.3.5-lite: the lite "
                                        "build has no DiskANN or GPU indexes\\); usable here: AUTOINDEX, FLAT, HNSW, "
                                        "IVF_FLAT, IVF_PQ, IVF_SQ8, SCANN", index_type="DISKANN", params={})
        assert manager(FakeMilvusClient(version="v2.3.5"), index_type="DISKANN", params={}).run()["changed"]

    def test_version_gates(self):
        self._fails(FakeMilvusClient(version="v2.2.16"), "index_type SCANN needs Milvus 2.3 or later; the server is v2.2.16",
                    index_type="SCANN", params={"nlist": 8})
        self._fails(FakeMilvusClient(kind=DataType.SPARSE_FLOAT_VECTOR), "SPARSE_INVERTED_INDEX needs Milvus 2.4",
                    index_type="SPARSE_INVERTED_INDEX", metric_type="IP", params={})

    def test_bad_params_fail_before_connecting(self):
        fake = FakeMilvusClient()
        self._fails(fake, "params.efConstruction", params={"M": 16, "efConstruction": 0})
        assert fake.calls == []

    def test_load_with_absent(self):
        with pytest.raises(MilvusIndexError, match="load=true cannot be combined with state=absent"):
            manager(FakeMilvusClient(), state="absent", load=True).run()

    def test_negative_wait_timeout(self):
        with pytest.raises(MilvusIndexError, match="wait_timeout must be 0"):
            manager(FakeMilvusClient(), wait_timeout=-1).run()


class TestManagerAbsent:
    def test_drop_releases_first(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "HNSW", "COSINE", {"M": 16, "efConstruction": 64}, loaded=True)
        planned = manager(fake, check_mode=True, state="absent").run()
        assert fake.collections["docs"]["index"] is not None
        res = manager(fake, state="absent").run()
        assert res["actions"] == planned["actions"] == ["release_collection(collection='docs')",
                                                        "drop_index(collection='docs', index_name='vec')"]
        assert fake.collections["docs"]["index"] is None and res["index"] == {}
        assert manager(fake, state="absent").run()["changed"] is False

    def test_explicit_name_only_drops_that_index(self):
        fake = FakeMilvusClient()
        fake.put_index("docs", "HNSW", "COSINE", {"M": 16, "efConstruction": 64}, name="other")
        res = manager(fake, state="absent", index_name="mine").run()
        assert res["changed"] is False and fake.collections["docs"]["index"] is not None


class TestConnection:
    def test_connection_error_is_wrapped(self, monkeypatch):
        def boom(**kw):
            raise FakeError("Fail connecting to server on 127.0.0.1:9, illegal connection params or server unavailable", 2)
        monkeypatch.setattr(_milvus, "MilvusClient", boom)
        mgr = MilvusIndexManager(params(uri="http://127.0.0.1:9"))
        with pytest.raises(MilvusIndexError, match="cannot connect to Milvus at http://127.0.0.1:9 \\(db_name=default\\): "
                                                   "Fail connecting"):
            mgr.run()

    def test_connection_arguments(self, monkeypatch):
        seen = {}

        def capture(**kw):
            seen.update(kw)
            return FakeMilvusClient()
        monkeypatch.setattr(_milvus, "MilvusClient", capture)
        MilvusIndexManager(params(user="root", password="pw", db_name="rag", secure=True, server_pem_path="/s.pem",
                                  server_name="milvus.lab", timeout=5.0)).run()
        assert seen == dict(uri="http://127.0.0.1:19530", db_name="rag", timeout=5.0, user="root", password="pw",
                            secure=True, server_pem_path="/s.pem", server_name="milvus.lab")
        seen.clear()
        MilvusIndexManager(params(token="root:Milvus")).run()
        assert seen == dict(uri="http://127.0.0.1:19530", db_name="default", timeout=30.0, token="root:Milvus")
