"""Unit tests for the milvus_collection and milvus_user modules: argument rules and main() around the managers.

The Milvus side is the in-memory stand-ins of tests/unit/plugins/module_utils/test_milvus_collection.py
and test_milvus_user.py (real-server behaviour: tests/integration/test_milvus_collection.py).
"""
import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.infra.plugins.module_utils import _milvus, _milvus_collection, _milvus_user
from ansible_collections.aistack.infra.plugins.modules import milvus_collection, milvus_user
from unit.plugins.module_utils.test_milvus_collection import FIELDS, FakeCollectionServer
from unit.plugins.module_utils.test_milvus_user import FakeAuthServer


def run(module, args, capsys, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    return exc.value.code != 0, json.loads(capsys.readouterr().out)


BASE = dict(collection="documents", fields=FIELDS, partitions=["tenant_a"], consistency_level="Strong")


@pytest.fixture
def server(monkeypatch):
    fake = FakeCollectionServer()
    monkeypatch.setattr(_milvus_collection, "connect", lambda params, error, **kw: fake.client(**kw))
    return fake


@pytest.mark.parametrize("module", [milvus_collection, milvus_user])
def test_argument_spec_merges_the_connection_options(module):
    spec = module.argument_spec()
    for key in _milvus.MILVUS_CONNECTION_ARGS:
        assert spec[key] == _milvus.MILVUS_CONNECTION_ARGS[key]
    assert spec["token"]["no_log"] is True and spec["password"]["no_log"] is True


def test_user_passwords_are_no_log():
    spec = milvus_user.argument_spec()
    assert spec["user_password"]["no_log"] is True and spec["previous_password"]["no_log"] is True


@pytest.mark.parametrize("extra,message", [
    (dict(fields=None), "state is present but all of the following are missing: fields"),
    (dict(consistency_level="Eventual"), "value of consistency_level must be one of: Strong, Session, Bounded, Eventually"),
    (dict(recreate="always"), "value of recreate must be one of: never, on_change, got: always"),
    (dict(fields=[{"name": "id"}]), "missing required arguments: type found in fields"),
    (dict(token="t0ken-value", user="root", password="secret-pw"), "parameters are mutually exclusive: token|user"),
])
def test_argument_rules(server, capsys, extra, message):
    args = dict((k, v) for k, v in dict(BASE, **extra).items() if v is not None)
    failed, out = run(milvus_collection, args, capsys)
    assert failed and message in out["msg"]
    assert server.mutations() == []


def test_check_mode_diff_then_real_run_then_idempotent(server, capsys):
    failed, out = run(milvus_collection, BASE, capsys, check_mode=True, diff=True)
    assert not failed and out["changed"] is True
    assert [a.split("(")[0] for a in out["actions"]] == ["create_collection", "create_partition"]
    assert out["diff"]["before"] == {} and out["diff"]["after"]["partitions"] == ["_default", "tenant_a"]
    assert server.mutations() == []
    failed, out = run(milvus_collection, BASE, capsys)
    assert not failed and out["changed"] is True and "diff" not in out
    failed, out = run(milvus_collection, BASE, capsys)
    assert not failed and out["changed"] is False and out["actions"] == []


def test_a_schema_difference_fails_with_the_differences(server, capsys):
    run(milvus_collection, BASE, capsys)
    fields = [dict(f) for f in FIELDS]
    fields[3]["dim"] = 32
    failed, out = run(milvus_collection, dict(BASE, fields=fields), capsys)
    assert failed and out["changed"] is False
    assert out["differences"] == [{"key": "field embedding: dim", "current": 16, "requested": 32}]
    assert out["collection"]["fields"][3]["dim"] == 16
    assert out["actions"] == []


def test_user_module_never_returns_a_password(monkeypatch, capsys):
    fake = FakeAuthServer()
    monkeypatch.setattr(_milvus_user, "connect", lambda params, error, **kw: fake.connect(**kw))
    args = dict(name="root", user_password="N3w-root-password", previous_password="Milvus")
    failed, out = run(milvus_user, args, capsys, diff=True)
    assert not failed and out["changed"] is True and out["actions"] == ["update_password(user='root')"]
    text = json.dumps(out)
    assert "N3w-root-password" not in text and '"Milvus"' not in text
    failed, out = run(milvus_user, dict(args, user_password="0ther-password"), capsys)
    assert failed and "0ther-password" not in json.dumps(out) and out["changed"] is False
