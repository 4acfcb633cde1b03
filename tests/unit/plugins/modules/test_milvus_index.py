"""Unit tests for the milvus_index module: argument spec rules and main() around the manager.

The Milvus side is the in-memory FakeMilvusClient of tests/unit/plugins/module_utils/test_milvus.py
(real-server behaviour is covered by tests/integration/test_milvus_index.py).
"""
import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.infra.plugins.module_utils import _milvus
from ansible_collections.aistack.infra.plugins.modules import milvus_index
from unit.plugins.module_utils.test_milvus import FakeMilvusClient


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def run(args, fake=None, check_mode=False, diff=False, monkeypatch=None, capsys=None):
    """Run main() with ``args``; return (failed, result dict)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    if fake is not None:
        monkeypatch.setattr(_milvus, "MilvusClient", lambda **kw: fake)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            milvus_index.main()
    out = json.loads(capsys.readouterr().out)
    return exc.value.code != 0, out


BASE = dict(collection="docs", field="vec", index_type="HNSW", metric_type="COSINE",
            params={"M": 16, "efConstruction": 64})


@pytest.fixture
def go(monkeypatch, capsys):
    def _go(args, fake=None, **kw):
        return run(args, fake=fake, monkeypatch=monkeypatch, capsys=capsys, **kw)
    return _go


def test_argument_spec_merges_the_connection_options():
    spec = milvus_index.argument_spec()
    for key in _milvus.MILVUS_CONNECTION_ARGS:
        assert spec[key] == _milvus.MILVUS_CONNECTION_ARGS[key]
    assert spec["token"]["no_log"] is True and spec["password"]["no_log"] is True
    assert spec["uri"]["default"] == "http://127.0.0.1:19530" and spec["db_name"]["default"] == "default"
    assert spec["index_type"]["choices"] == list(_milvus.INDEX_TYPE_NAMES)


@pytest.mark.parametrize("extra,message", [
    (dict(token="t0ken-value", user="root", password="secret-pw"), "parameters are mutually exclusive: token|user"),
    (dict(user="root"), "parameters are required together: user, password"),
    (dict(index_type=None), "state is present but all of the following are missing: index_type"),
    (dict(metric_type="EUCLID"), "value of metric_type must be one of: L2, IP, COSINE, HAMMING, JACCARD"),
    (dict(recreate="always"), "value of recreate must be one of: never, on_change, got: always"),
    (dict(client_pem_path="/c.pem"), "parameters are required together: client_pem_path, client_key_path"),
])
def test_argument_rules(go, extra, message):
    args = dict(BASE, **extra)
    args = dict((k, v) for k, v in args.items() if v is not None)
    failed, out = go(args)
    assert failed and message in out["msg"]


def test_check_mode_then_real_run_then_idempotent(go):
    fake = FakeMilvusClient()
    failed, out = go(BASE, fake, check_mode=True)
    assert not failed and out["changed"] is True
    assert fake.collections["docs"]["index"] is None
    assert "diff" not in out
    failed, out = go(BASE, fake, diff=True)
    assert not failed and out["changed"] is True
    assert out["diff"]["before"] == {} and out["diff"]["after"]["index_type"] == "HNSW"
    assert out["index"]["params"] == {"M": 16, "efConstruction": 64}
    failed, out = go(BASE, fake)
    assert not failed and out["changed"] is False and out["actions"] == []


def test_difference_fails_with_the_difference(go):
    fake = FakeMilvusClient()
    fake.put_index("docs", "HNSW", "COSINE", {"M": 8, "efConstruction": 64})
    failed, out = go(BASE, fake)
    assert failed and out["changed"] is False
    assert "params.M: 8 (current) != 16 (requested)" in out["msg"]
    assert out["differences"] == [{"key": "params.M", "current": 8, "requested": 16}]
    assert out["actions"] == []


def test_failure_after_a_change_reports_changed_and_the_actions(go):
    fake = FakeMilvusClient(build_polls=10 ** 6)
    failed, out = go(dict(BASE, wait_timeout=1), fake)
    assert failed and out["changed"] is True
    assert out["actions"][0].startswith("create_index(")
    assert "was not built within wait_timeout=1s" in out["msg"]


def test_missing_pymilvus(go, monkeypatch):
    monkeypatch.setattr(_milvus, "HAS_PYMILVUS", False)
    failed, out = go(BASE)
    assert failed and "Failed to import the required Python library (pymilvus)" in out["msg"]


def test_password_is_not_logged(go):
    fake = FakeMilvusClient()
    failed, out = go(dict(BASE, user="root", password="very-secret-pw"), fake)
    assert not failed
    assert "very-secret-pw" not in json.dumps(out)
