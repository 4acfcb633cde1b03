"""Unit tests for plugins/module_utils/_kafka.py: offline validation, planning and the health summary.

The real broker is covered by tests/integration/test_kafka_topic.py and the kafka tests of test_probes.py.
What a one-node real broker cannot produce here (partitions without a leader, under-replicated partitions,
fenced brokers, several brokers for a reassignment plan) is fed to the code as plain metadata dicts, as
kafka-python returns them.
"""
import logging

import pytest

from ansible_collections.aistack.infra.plugins.module_utils import _kafka as K


# ---------------------------------------------------------------------------- offline validation
@pytest.mark.parametrize("name,why", [
    ("app-logs", None),
    ("a.b_c-D9", None),
    ("x" * 249, None),
    ("", "must not be empty"),
    (".", "must not be '.' or '..'"),
    ("..", "must not be '.' or '..'"),
    ("x" * 250, "is 250 characters long; at most 249 are allowed"),
    ("app logs/1", "contains ' ', '/'; only ASCII letters, digits, \".\", \"_\" and \"-\" are allowed"),
    ("caf\u00e9", "contains '\u00e9'; only ASCII letters"),
])
def test_topic_name_rules(name, why):
    got = K.validate_topic_name(name)
    if why is None:
        assert got is None
    else:
        assert got.startswith(why)


def test_topic_params_report_every_problem_at_once():
    errors = K.validate_topic_params(dict(name="..", partitions=0, replication_factor=0,
                                          configs={"Retention MS": 1, "retention.ms": {"a": 1}}, state="present"))
    assert errors == [
        "name: '..' must not be '.' or '..'",
        "partitions: must be >= 1, got 0",
        "replication_factor: must be between 1 and 32767, got 0",
        "configs: 'Retention MS' is not a Kafka config name (lower case words joined by dots)",
        "configs.retention.ms: a value must be a string, number, boolean, list or null, not a mapping",
    ]


def test_state_absent_takes_no_definition():
    assert K.validate_topic_params(dict(name="t", partitions=3, configs={}, state="absent")) == [
        "state=absent: partitions cannot be combined with it"]


def test_connection_validation():
    ok = dict(bootstrap_servers=["k1:9092", "[::1]:9093"], security_protocol="PLAINTEXT", request_timeout=30)
    assert K.validate_connection(ok) == []
    errors = K.validate_connection(dict(bootstrap_servers=["k1", "k2:99999"], security_protocol="SASL_SSL",
                                        sasl_mechanism="GSSAPI", request_timeout=0, ssl_keyfile="/k.pem"))
    assert errors == [
        "bootstrap_servers: 'k1' is not host:port",
        "bootstrap_servers: 'k2:99999' is not host:port",
        "sasl_mechanism: 'GSSAPI' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        "sasl_username/sasl_password: security_protocol SASL_SSL needs both",
        "request_timeout: must be > 0 seconds, got 0",
        "ssl_keyfile: needs ssl_certfile",
    ]
    assert K.validate_connection(dict(bootstrap_servers=[])) == ["bootstrap_servers: give at least one host:port"]


@pytest.mark.parametrize("value,expected", [
    (604800000, "604800000"), ("delete", "delete"), (True, "true"), (False, "false"), (0.5, "0.5"), (2.0, "2"),
    (["compact", "delete"], "compact,delete"),
])
def test_config_values_as_kafka_stores_them(value, expected):
    assert K.config_value(value) == expected


def test_client_config_for_each_protocol(tmp_path):
    plain = K.client_config(dict(bootstrap_servers=["k:9092"], security_protocol="PLAINTEXT", request_timeout=5))
    assert plain["security_protocol"] == "PLAINTEXT" and "ssl_context" not in plain and "sasl_mechanism" not in plain
    assert plain["request_timeout_ms"] == plain["bootstrap_timeout_ms"] == 5000
    sasl = K.client_config(dict(bootstrap_servers=["k:9093"], security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                                sasl_username="u", sasl_password="p", ssl_check_hostname=False))
    assert sasl["sasl_mechanism"] == "PLAIN" and sasl["sasl_plain_username"] == "u"
    assert sasl["ssl_context"].check_hostname is False
    with pytest.raises(K.KafkaError) as err:
        K.client_config(dict(bootstrap_servers=["k:9093"], security_protocol="SSL", ssl_cafile=str(tmp_path / "no.pem")))
    assert err.value.msg.startswith("cannot load the TLS files (ssl_cafile, ssl_certfile, ssl_keyfile): ")


def test_bootstrap_log_reads_the_reasons_of_its_own_client_only():
    handler = K._BootstrapLog("kafka-io-mine", "SCRAM-SHA-512")

    def emit(message, thread="kafka-io-mine"):
        record = logging.LogRecord("kafka.net.manager", logging.WARNING, __file__, 1, message, None, None)
        record.threadName = thread
        handler.emit(record)

    emit("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: 111 ECONNREFUSED (backoff 0.05 secs)")
    emit("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: 111 ECONNREFUSED (backoff 0.11 secs)")
    emit("Bootstrap connection to bootstrap-0 failed: other client's reason", thread="kafka-io-other")
    assert handler.reasons == ["KafkaConnectionError: 111 ECONNREFUSED"] and handler.fatal() == []
    emit("<KafkaConnection node_id=bootstrap-0> Request 4: SaslAuthenticateRequest(version=2, auth_bytes=b'...')")
    emit("<KafkaConnection node_id=bootstrap-0>: Connection lost: KafkaConnectionError: socket disconnected")
    assert handler.fatal() == ["the broker closed the connection during SASL SCRAM-SHA-512 authentication: "
                               "authentication failed (wrong user name or password?)"]


# ------------------------------------------------------------------------------- health summary
class MetadataAdmin:
    """Returns fixed describe_cluster / describe_topics answers (kafka-python's dict shapes)."""

    def __init__(self, brokers, topics):
        self.brokers, self.topics = brokers, topics

    def describe_cluster(self):
        return {"cluster_id": "c1", "controller_id": 1, "brokers": self.brokers}

    def describe_topics(self, names):
        return [self.topics.get(n, {"name": n, "error_code": 3, "partitions": []}) for n in names]


def part(index, leader, replicas, isr):
    return {"partition_index": index, "leader_id": leader, "replica_nodes": replicas, "isr_nodes": isr,
            "error_code": 0}


def test_health_reports_leaderless_under_replicated_missing_and_fenced():
    brokers = [{"broker_id": 1, "host": "k1", "port": 9092, "is_fenced": False},
               {"broker_id": 2, "host": "k2", "port": 9092, "is_fenced": True}]
    topics = {"ingest": {"name": "ingest", "error_code": 0,
                         "partitions": [part(0, 1, [1, 2], [1, 2]), part(1, -1, [2, 1], []), part(2, 1, [1, 2], [1])]},
              "secret": {"name": "secret", "error_code": 29, "partitions": []}}
    detail, problems = K.cluster_health(MetadataAdmin(brokers, topics), ["ingest", "missing", "secret"])
    assert detail["brokers"] == ["1@k1:9092", "2@k2:9092"] and detail["topics"] == {"ingest": 3}
    assert problems == ["fenced broker(s): 2", "topic(s) not found: missing", "topic ingest: partition(s) without "
                        "leader: 1", "topic ingest: under-replicated partition(s): 2",
                        "topic secret: TopicAuthorizationFailedError"]


def test_health_of_a_cluster_without_brokers():
    assert K.cluster_health(MetadataAdmin([], {}), [])[1] == ["the cluster reports no brokers"]


# ------------------------------------------------------------------------------------- planning
def current(partitions=3, rf=1, overrides=None):
    overrides = overrides or {}
    all_configs = dict((k, ("1", "DEFAULT_CONFIG")) for k in K.KNOWN_TOPIC_CONFIGS)
    all_configs.update(("retention.ms", ("604800000", "DEFAULT_CONFIG")) for _ in [0])
    all_configs.update((k, (v, "DYNAMIC_TOPIC_CONFIG")) for k, v in overrides.items())
    return dict(name="t", partitions=partitions, replication_factor=rf, all_configs=all_configs,
                assignment=dict((p, list(range(1, rf + 1))) for p in range(partitions)), configs=dict(overrides))


def manager(**params):
    base = dict(name="t", state="present", partitions=None, replication_factor=None, configs={},
                allow_reassignment=False, request_timeout=30)
    base.update(params)
    return K.TopicManager(base, admin=None)


def test_plan_create_with_sorted_configs():
    m = manager(partitions=6, replication_factor=3, configs={"retention.ms": 3600000, "cleanup.policy": "compact"})
    m.allowed_configs = lambda cur: sorted(K.KNOWN_TOPIC_CONFIGS)
    ops, after = m.plan(None, [1, 2, 3])
    assert [m.describe_op(*op) for op in ops] == [
        "create_topics(name='t', num_partitions=6, replication_factor=3, configs={'cleanup.policy': 'compact', "
        "'retention.ms': '3600000'})"]
    assert after == dict(name="t", partitions=6, replication_factor=3,
                         configs={"cleanup.policy": "compact", "retention.ms": "3600000"})


def test_plan_create_refuses_more_replicas_than_brokers():
    m = manager(partitions=1, replication_factor=4)
    m.allowed_configs = lambda cur: sorted(K.KNOWN_TOPIC_CONFIGS)
    with pytest.raises(K.KafkaError) as err:
        m.plan(None, [1, 2, 3])
    assert err.value.msg == "replication_factor: 4 is more than the 3 broker(s) of the cluster (1, 2, 3)"


def test_plan_existing_topic_sets_only_what_differs_and_pins_defaults():
    m = manager(partitions=3, configs={"retention.ms": 604800000, "cleanup.policy": "1", "segment.ms": None,
                                       "min.insync.replicas": None})
    ops, after = m.plan(current(overrides={"cleanup.policy": "1", "segment.ms": "1000"}), [1])
    # retention.ms equals the broker default but is not set on the topic: it is pinned; segment.ms is reset;
    # min.insync.replicas is not set on the topic, so there is nothing to reset
    assert ops == [("alter_configs", {"set": {"retention.ms": "604800000"}, "delete": ["segment.ms"]})]
    assert after["configs"] == {"cleanup.policy": "1", "retention.ms": "604800000"}
    assert manager(configs={"cleanup.policy": "1"}).plan(current(overrides={"cleanup.policy": "1"}), [1])[0] == []


def test_plan_refuses_fewer_partitions_and_an_unasked_replication_change():
    with pytest.raises(K.KafkaError) as err:
        manager(partitions=2).plan(current(partitions=3), [1])
    assert "has 3 partitions; 2 would be a decrease" in err.value.msg
    assert err.value.details["differences"] == [{"key": "partitions", "current": 3, "requested": 2}]
    with pytest.raises(K.KafkaError) as err:
        manager(replication_factor=2).plan(current(rf=3), [1, 2, 3])
    assert "Set allow_reassignment=true" in err.value.msg
    with pytest.raises(K.KafkaError) as err:
        manager(replication_factor=4, allow_reassignment=True).plan(current(rf=3), [1, 2, 3])
    assert err.value.msg.startswith("replication_factor: 4 is more than the 3 broker(s)")


def test_plan_unknown_config_lists_the_allowed_ones():
    with pytest.raises(K.KafkaError) as err:
        manager(configs={"retention.msec": 1}).plan(current(), [1])
    assert err.value.msg.startswith("configs: unknown topic config(s) retention.msec; allowed: cleanup.policy, ")


def test_plan_reassignment_then_partitions_in_that_order():
    m = manager(partitions=4, replication_factor=2, allow_reassignment=True)
    ops, after = m.plan(current(partitions=2, rf=1), [1, 2, 3])
    assert [op for op, arg in ops] == ["reassign", "add_partitions"]
    assert ops[0][1] == {0: [1, 2], 1: [1, 3]}
    assert after["replication_factor"] == 2 and after["partitions"] == 4


def test_reassignment_plan_grows_with_the_least_used_brokers_and_shrinks_from_the_end():
    assert K.plan_reassignment({0: [1], 1: [2], 2: [3]}, 2, [1, 2, 3]) == {0: [1, 2], 1: [2, 3], 2: [3, 1]}
    assert K.plan_reassignment({0: [1, 2, 3], 1: [2, 3, 1]}, 1, [1, 2, 3]) == {0: [1], 1: [2]}
    with pytest.raises(K.KafkaError):
        K.plan_reassignment({0: [1]}, 3, [1, 2])


def test_plan_absent():
    assert manager(state="absent").plan(current(), [1]) == ([("delete", None)], None)
    assert manager(state="absent").plan(None, [1]) == ([], None)


def test_connecting_keeps_kafka_pythons_debug_records_to_itself():
    """While connecting, kafka.net.connection is read at DEBUG (its records can hold a SASL PLAIN password), so
    they must not reach the application's handlers; the loggers are restored afterwards."""
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    root_handler = Collect(logging.DEBUG)
    logging.getLogger().addHandler(root_handler)
    connection = logging.getLogger("kafka.net.connection")
    before = (connection.level, connection.propagate)
    handler = K._BootstrapLog("kafka-io-x", "PLAIN")
    try:
        K._watch(handler)
        connection.debug("Request 3: SaslAuthenticateRequest(auth_bytes=b'\\x00user\\x00secret-pw')")
        assert connection.isEnabledFor(logging.DEBUG)
    finally:
        K._unwatch(handler)
        logging.getLogger().removeHandler(root_handler)
    assert not any("secret-pw" in m for m in seen)
    assert (connection.level, connection.propagate) == before
