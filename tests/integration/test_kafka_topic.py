"""aistack.infra.kafka_topic through real ansible-playbook against a real Kafka 4.3 broker (kafka_server fixture).

ansible-playbook costs seconds to start, so each scenario is one playbook of several tasks (each registered,
failures ignored) run once per module; the tests then assert on each task's result and on the cluster as an
independent kafka-python admin client reads it afterwards. Where a task must be proved to have changed nothing,
it is the last task touching its topic, or it works on a topic of its own.
"""
import json

import pytest

from lib.ansible_run import run_playbook
from lib.kafka_server import kafka_admin

pytest.importorskip("kafka")
from kafka.admin import ConfigResource, ConfigResourceType  # noqa: E402

MAIN = "kt-main"
CHECKED = "kt-check-only"
SASL = "kt-sasl"


def run_tasks(tasks, *args):
    """Run ``tasks`` ({name: (module args, task keywords)}) in one play; return {name: result}."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        dict({"name": name, "aistack.infra.kafka_topic": margs, "register": "r", "ignore_errors": True}, **kw)
        for name, (margs, kw) in tasks.items()]}]
    proc = run_playbook(play, *args)
    try:
        out = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError("no JSON from ansible-playbook (rc %s): %s %s" % (proc.returncode, proc.stdout[-3000:],
                                                                            proc.stderr[-3000:])) from exc
    results = {}
    for task in out["plays"][0]["tasks"]:
        result = task["hosts"]["localhost"]
        result.setdefault("failed", False)
        results[task["task"]["name"]] = result
    assert list(results) == list(tasks), proc.stdout[-3000:]
    return results, proc.stdout


def observe(admin, name):
    """The topic as an independent client sees it: None, or (partitions, replication factor, topic configs)."""
    if name not in admin.list_topics():
        return None
    topic = admin.describe_topics([name])[0]
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)], config_filter="all")
    overrides = dict((k, v["value"]) for k, v in configs["topic"][name].items()
                     if v["config_source"] == "DYNAMIC_TOPIC_CONFIG")
    return (len(topic["partitions"]), max(len(p["replica_nodes"]) for p in topic["partitions"]), overrides)


@pytest.fixture(scope="module")
def admin(kafka_server):
    client = kafka_admin(kafka_server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def plaintext_run(kafka_server, admin):
    """One playbook over PLAINTEXT: check mode, create, again, grow, then each refused change."""
    conn = {"bootstrap_servers": [kafka_server["plaintext"]], "request_timeout": 15}
    definition = dict(conn, name=MAIN, partitions=2, replication_factor=1,
                      configs={"retention.ms": 3600000, "cleanup.policy": ["compact", "delete"]})
    tasks = {
        "check": (dict(definition, name=CHECKED), {"check_mode": True, "diff": True}),
        "create": (definition, {"diff": True}),
        "again": (definition, {"diff": True}),
        "grow": (dict(conn, name=MAIN, partitions=4, configs={"retention.ms": "7200000", "min.insync.replicas": 1}),
                 {"diff": True}),
        "grow_check": (dict(conn, name=MAIN, partitions=6), {"check_mode": True}),
        "decrease": (dict(conn, name=MAIN, partitions=3), {}),
        "rf_change": (dict(conn, name=MAIN, replication_factor=2), {}),
        "rf_change_allowed": (dict(conn, name=MAIN, replication_factor=2, allow_reassignment=True), {}),
        "unknown_config": (dict(conn, name=MAIN, configs={"retention.msec": 1}), {}),
        "bad_value": (dict(conn, name=MAIN, partitions=5, configs={"retention.ms": "a week"}), {}),
        "delete_check": (dict(conn, name=MAIN, state="absent"), {"check_mode": True}),
        "bad_input": (dict(conn, name="bad/name", partitions=0), {}),
    }
    results, stdout = run_tasks(tasks)
    return {"results": results, "stdout": stdout, "main": observe(admin, MAIN), "checked": observe(admin, CHECKED)}


MAIN_AFTER = (4, 1, {"retention.ms": "7200000", "cleanup.policy": "compact,delete", "min.insync.replicas": "1"})


def test_check_mode_reports_the_creation_and_creates_nothing(plaintext_run):
    res = plaintext_run["results"]["check"]
    assert not res["failed"], res.get("msg")
    assert res["changed"] is True
    assert res["actions"] == ["create_topics(name='%s', num_partitions=2, replication_factor=1, configs="
                              "{'cleanup.policy': 'compact,delete', 'retention.ms': '3600000'})" % CHECKED]
    assert res["diff"] == {"before": {}, "after": {"name": CHECKED, "partitions": 2, "replication_factor": 1,
                                                   "configs": {"retention.ms": "3600000",
                                                               "cleanup.policy": "compact,delete"}}}
    assert plaintext_run["checked"] is None  # the independent client: no such topic


def test_real_run_creates_exactly_the_definition_and_second_run_is_unchanged(plaintext_run):
    create, again = plaintext_run["results"]["create"], plaintext_run["results"]["again"]
    assert not create["failed"], create.get("msg")
    assert create["changed"] is True
    assert create["actions"] == ["create_topics(name='%s', num_partitions=2, replication_factor=1, configs="
                                 "{'cleanup.policy': 'compact,delete', 'retention.ms': '3600000'})" % MAIN]
    assert create["topic"] == {"name": MAIN, "partitions": 2, "replication_factor": 1,
                               "configs": {"retention.ms": "3600000", "cleanup.policy": "compact,delete"}}
    assert create["diff"]["before"] == {}
    assert not again["failed"], again.get("msg")
    assert again["changed"] is False and again["actions"] == []
    assert again["diff"]["before"] == again["diff"]["after"] == create["topic"]


def test_partitions_grow_and_configs_change_incrementally(plaintext_run):
    grow = plaintext_run["results"]["grow"]
    assert not grow["failed"], grow.get("msg")
    assert grow["changed"] is True
    assert grow["actions"] == [
        "create_partitions('%s', total_count=4)" % MAIN,
        "incremental_alter_configs(topic='%s', set={'min.insync.replicas': '1', 'retention.ms': '7200000'})" % MAIN]
    # cleanup.policy was not named, so it stays as it was
    assert grow["diff"]["before"]["configs"] == {"retention.ms": "3600000", "cleanup.policy": "compact,delete"}
    assert grow["diff"]["after"] == {"name": MAIN, "partitions": 4, "replication_factor": 1, "configs": MAIN_AFTER[2]}
    check = plaintext_run["results"]["grow_check"]
    assert check["changed"] is True and check["actions"] == ["create_partitions('%s', total_count=6)" % MAIN]
    assert plaintext_run["main"] == MAIN_AFTER  # check mode added nothing


def test_refused_changes_say_why_and_leave_the_topic_as_it_was(plaintext_run):
    res = plaintext_run["results"]
    assert res["decrease"]["failed"] and res["decrease"]["changed"] is False
    assert res["decrease"]["msg"].startswith("partitions: topic '%s' has 4 partitions; 3 would be a decrease, which "
                                             "Kafka cannot do" % MAIN)
    assert res["decrease"]["differences"] == [{"key": "partitions", "current": 4, "requested": 3}]

    assert res["rf_change"]["failed"]
    assert "replication_factor: topic '%s' has replication factor 1, 2 requested" % MAIN in res["rf_change"]["msg"]
    assert "allow_reassignment=true" in res["rf_change"]["msg"]
    assert "kafka-reassign-partitions.sh" in res["rf_change"]["msg"]
    assert res["rf_change_allowed"]["failed"]
    assert res["rf_change_allowed"]["msg"] == "replication_factor: 2 is more than the 1 broker(s) of the cluster (1)"

    msg = res["unknown_config"]["msg"]
    assert msg.startswith("configs: unknown topic config(s) retention.msec; allowed: cleanup.policy, ")
    assert "retention.ms, " in msg and "min.insync.replicas" in msg

    # the broker refuses the value when validating, before the partition increase of the same task is made
    assert res["bad_value"]["failed"] and res["bad_value"]["changed"] is False
    assert "Invalid value a week for configuration retention.ms" in res["bad_value"]["msg"]

    delete = res["delete_check"]
    assert delete["changed"] is True and delete["actions"] == ["delete_topics(['%s'])" % MAIN]
    assert plaintext_run["main"] == MAIN_AFTER


def test_invalid_input_fails_before_connecting(plaintext_run):
    res = plaintext_run["results"]["bad_input"]
    assert res["failed"] and res["actions"] == []
    assert res["msg"] == ("invalid arguments: name: 'bad/name' contains '/'; only ASCII letters, digits, \".\", \"_\" "
                          "and \"-\" are allowed; partitions: must be >= 1, got 0")


@pytest.fixture(scope="module")
def sasl_run(kafka_server, admin):
    """One playbook over SASL_SSL: create, a wrong password and an untrusted CA (each on a topic of its own, which
    must not exist afterwards), then delete in check mode, delete, delete again."""
    conn = {"bootstrap_servers": [kafka_server["sasl_ssl"]], "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": kafka_server["sasl_username"],
            "sasl_password": kafka_server["sasl_password"], "ssl_cafile": kafka_server["ca_file"], "request_timeout": 15}
    tasks = {
        "create": (dict(conn, name=SASL, partitions=3, configs={"retention.bytes": 1048576}), {"diff": True}),
        "wrong_password": (dict(conn, name=SASL + "-denied", partitions=6, sasl_password="not-the-password"), {}),
        "untrusted": (dict(conn, name=SASL + "-untrusted", partitions=6, ssl_cafile=None), {}),
        "absent_check": (dict(conn, name=SASL, state="absent"), {"check_mode": True}),
        "absent": (dict(conn, name=SASL, state="absent"), {"diff": True}),
        "absent_again": (dict(conn, name=SASL, state="absent"), {}),
    }
    results, stdout = run_tasks(tasks)
    return {"results": results, "stdout": stdout, "after": observe(admin, SASL),
            "denied": observe(admin, SASL + "-denied"), "untrusted": observe(admin, SASL + "-untrusted")}


def test_sasl_ssl_with_the_right_password_creates(sasl_run):
    res = sasl_run["results"]["create"]
    assert not res["failed"], res.get("msg")
    assert res["changed"] is True
    assert res["topic"] == {"name": SASL, "partitions": 3, "replication_factor": 1,
                            "configs": {"retention.bytes": "1048576"}}


def test_sasl_ssl_wrong_password_and_untrusted_ca_are_refused_and_change_nothing(sasl_run):
    wrong = sasl_run["results"]["wrong_password"]
    assert wrong["failed"] and wrong["changed"] is False
    assert "authentication failed" in wrong["msg"].lower() and "SCRAM-SHA-256" in wrong["msg"]
    untrusted = sasl_run["results"]["untrusted"]
    assert untrusted["failed"] and "CERTIFICATE_VERIFY_FAILED" in untrusted["msg"]
    assert sasl_run["denied"] is None and sasl_run["untrusted"] is None
    # no_log: the password given to the module never shows in the output
    assert "not-the-password" not in sasl_run["stdout"]
    assert sasl_run["results"]["create"]["invocation"]["module_args"]["sasl_password"] == \
        "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_state_absent_deletes_once(sasl_run):
    res = sasl_run["results"]
    assert res["absent_check"]["changed"] is True
    assert res["absent_check"]["actions"] == ["delete_topics(['%s'])" % SASL]
    assert res["absent"]["changed"] is True and res["absent"]["actions"] == ["delete_topics(['%s'])" % SASL]
    assert res["absent"]["diff"]["before"]["partitions"] == 3 and res["absent"]["diff"]["after"] == {}
    assert res["absent_again"]["changed"] is False and res["absent_again"]["actions"] == []
    assert sasl_run["after"] is None
