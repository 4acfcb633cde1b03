"""Unit tests for the kafka_topic module: argument spec and main() around the manager, without a broker
(the real broker is covered by tests/integration/test_kafka_topic.py)."""
import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.infra.plugins.module_utils import _kafka
from ansible_collections.aistack.infra.plugins.modules import kafka_topic


@pytest.fixture
def go(monkeypatch, capsys):
    def _go(args, connect=None):
        if connect is not None:
            monkeypatch.setattr(kafka_topic, "connect_admin", connect)
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exc:
                kafka_topic.main()
        return exc.value.code != 0, json.loads(capsys.readouterr().out)
    return _go


def refuse(*args, **kwargs):
    raise AssertionError("the module connected although its arguments are invalid")


def test_argument_spec_merges_the_connection_options():
    spec = kafka_topic.argument_spec()
    for key, value in _kafka.KAFKA_CONNECTION_ARGS.items():
        assert spec[key] == value
    assert spec["sasl_password"]["no_log"] is True
    assert spec["name"]["aliases"] == ["topic"] and spec["state"]["default"] == "present"


def test_invalid_arguments_fail_before_connecting(go):
    failed, out = go({"bootstrap_servers": ["k1:9092"], "name": "a" * 250, "replication_factor": 0}, connect=refuse)
    assert failed and out["actions"] == []
    assert out["msg"] == ("invalid arguments: name: '%s' is 250 characters long; at most 249 are allowed; "
                          "replication_factor: must be between 1 and 32767, got 0" % ("a" * 250))


def test_sasl_needs_user_and_password(go):
    failed, out = go({"bootstrap_servers": ["k1:9093"], "name": "t", "security_protocol": "SASL_SSL"}, connect=refuse)
    assert failed and "security_protocol is SASL_SSL but all of the following are missing: sasl_username, " \
                      "sasl_password" in out["msg"]


def test_connection_failure_is_reported_without_changes(go):
    def cannot(params, client_id):
        raise _kafka.KafkaError("cannot connect to Kafka at k1:9092 (PLAINTEXT): KafkaConnectionError: 111 ECONNREFUSED")
    failed, out = go({"bootstrap_servers": ["k1:9092"], "name": "t", "sasl_password": "s3cret-pw"}, connect=cannot)
    assert failed and out["changed"] is False and out["actions"] == []
    assert out["msg"].startswith("cannot connect to Kafka at k1:9092 (PLAINTEXT)")
    assert "s3cret-pw" not in json.dumps(out)


def test_missing_kafka_python_is_named(go, monkeypatch):
    monkeypatch.setattr(kafka_topic, "HAS_KAFKA", False)
    failed, out = go({"bootstrap_servers": ["k1:9092"], "name": "t"}, connect=refuse)
    assert failed and "Failed to import the required Python library (kafka-python)" in out["msg"]
