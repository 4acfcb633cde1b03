"""The demo AI service's log consumer (lab/images/demo-ai-service/app/demo_ai_service/logs.py) on a
REAL Kafka broker (tests/lib/kafka_server.py, SASL_SSL with SCRAM-SHA-512) and a REAL OpenSearch
node with k-NN (tests/lib/opensearch_server.py, lucene), with the real all-MiniLM-L6-v2 weights.

Proves: each record is indexed once under <topic>-<partition>-<offset> with its vector and fields;
offsets are committed only after the bulk write (a consumer stopped mid-stream, as SIGTERM stops a
bluegreen slot, leaves committed offsets equal to what is indexed, and a second member of the group
takes over without loss or duplicate); the service's /metrics reports the group's lag read from the
brokers (everything before the first commit, the rest after the stop, 0 once caught up) and the
consumer's counters; a k-NN query for a paraphrase finds its line first; an index of another
dimension is refused naming the setting.
"""
import json
import os
import time
import uuid

import pytest

from lib.kafka_server import client_config, kafka_admin
from lib.prometheus_text import parse

opensearchpy = pytest.importorskip("opensearchpy")
kafka = pytest.importorskip("kafka")


def _index(client, name, dimension):
    client.indices.create(index=name, body={
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"properties": {"embedding": {"type": "knn_vector", "dimension": dimension, "method": {
            "name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}, "message": {"type": "text"}}}})


@pytest.fixture()
def setup(kafka_server, opensearch_server):
    from demo_ai_service import logs
    topic = "logs-" + uuid.uuid4().hex[:8]
    admin = kafka_admin(kafka_server)
    admin.create_topics([kafka.admin.NewTopic(topic, 2, 1)])
    admin.close()
    client = opensearchpy.OpenSearch(hosts=opensearch_server["hosts"], timeout=60)
    index = "vectors-" + uuid.uuid4().hex[:8]
    _index(client, index, 384)
    env = {"LOG_CONSUMER_ENABLED": "1", "KAFKA_BOOTSTRAP": kafka_server["sasl_ssl"], "KAFKA_TOPICS": topic,
           "KAFKA_GROUP_ID": "ai-" + topic, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "KAFKA_SASL_USER": kafka_server["sasl_username"], "KAFKA_SASL_PASSWORD": kafka_server["sasl_password"],
           # The CA as PEM text (what the lab passes to the slots, which have no file mounted): the
           # settings write it to a private file, which every test here then trusts.
           "KAFKA_CA_PEM": open(kafka_server["ca_file"]).read(), "KAFKA_BATCH": "25",
           "OPENSEARCH_URL": opensearch_server["hosts"][0], "LOG_VECTOR_INDEX": index}
    yield logs, logs.settings_from_env(env), client, topic, index
    client.indices.delete(index=index, ignore_unavailable=True)


def _produce(kafka_server, topic, lines):
    producer = kafka.KafkaProducer(value_serializer=lambda v: json.dumps(v).encode(), acks="all",
                                   **client_config(kafka_server, "sasl_ssl"))
    for n, message in enumerate(lines):
        producer.send(topic, {"service": "checkout", "level": "ERROR" if n % 7 == 0 else "INFO", "seq": n,
                              "message": message})
    producer.flush(30)
    producer.close()


def _committed(kafka_server, group, topic):
    admin = kafka_admin(kafka_server)
    offsets = admin.list_group_offsets(group).get(group, {})
    admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topic)


def _metrics(cfg, consumer):
    """The service's /metrics page (demo_ai_service.metrics) for this consumer, read now."""
    from types import SimpleNamespace
    from demo_ai_service import metrics
    registry = metrics.registry(SimpleNamespace(cfg=cfg, consumer=consumer))
    group = ("group", cfg["group_id"])
    # A group the brokers have not seen has no coordinator for a moment (a retriable error: the
    # page says so with aistack_consumer_lag_read_success 0, and the next scrape reads it).
    for _ in range(30):
        samples = parse(metrics.exposition(registry)[0].decode())
        if samples[("aistack_consumer_lag_read_success", frozenset([group]))] == 1:
            break
        time.sleep(1)
    assert samples[("aistack_consumer_lag_read_success", frozenset([group]))] == 1
    lag = {dict(ls)["partition"]: v for (name, ls), v in samples.items() if name == "aistack_consumer_lag"}
    return lag, {name: v for (name, ls), v in samples.items() if ls == frozenset([group])}


def _wait(predicate, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(1)
    return False


def test_consumer_indexes_each_line_once_and_hands_over_cleanly(kafka_server, setup, embedder):
    logs, cfg, client, topic, index = setup
    lines = ["request %d served in %d ms" % (n, n % 97) for n in range(300)]
    lines[137] = "TLS handshake with the payment gateway failed: certificate expired"
    _produce(kafka_server, topic, lines)

    first = logs.LogConsumer(cfg, embedder)
    # Nothing committed yet: the lag is every line of both partitions (the group reads from the earliest).
    lag, _ = _metrics(cfg, first)
    assert set(lag) == {"0", "1"} and sum(lag.values()) == 300, lag
    first.start()
    assert first.ready.wait(60), first.error
    assert _wait(lambda: first.stats["commits"] >= 2), first.stats
    first.stop()          # what SIGTERM does: finish the batch, commit, leave the group
    assert not first.is_alive() and first.stats["closed"]
    client.indices.refresh(index=index)
    indexed = client.count(index=index)["count"]
    # Committed offsets are exactly what was written: nothing committed that is not indexed.
    assert _committed(kafka_server, cfg["group_id"], topic) == indexed == first.stats["indexed"]
    assert 0 < indexed < 300
    lag, counters = _metrics(cfg, first)
    assert sum(lag.values()) == 300 - indexed, lag
    assert counters["aistack_consumer_messages_indexed_total"] == indexed
    assert counters["aistack_consumer_messages_consumed_total"] == first.stats["consumed"]
    assert counters["aistack_consumer_alive"] == 0

    second = logs.LogConsumer(cfg, embedder)
    second.start()
    assert _wait(lambda: _committed(kafka_server, cfg["group_id"], topic) == 300), second.stats
    assert sum(_metrics(cfg, second)[0].values()) == 0
    second.stop()
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == 300
    # The second member started at the committed offsets: no record was read twice.
    assert first.stats["consumed"] + second.stats["consumed"] == 300
    doc = client.get(index=index, id="%s-%d-%d" % (topic, 0, 0))["_source"]
    assert set(doc) >= {"message", "service", "level", "seq", "kafka", "embedding"}
    assert len(doc["embedding"]) == 384

    hits = logs.knn_search(client, index, "embedding",
                           embedder.encode(["the payment provider's certificate is out of date"])[0], 3)
    assert hits[0]["message"] == lines[137]
    assert "embedding" not in hits[0]


def test_redelivered_records_overwrite_their_own_documents(kafka_server, setup, embedder):
    logs, cfg, client, topic, index = setup
    _produce(kafka_server, topic, ["line %d" % n for n in range(40)])
    consumer = kafka.KafkaConsumer(topic, group_id="replay-" + topic, auto_offset_reset="earliest",
                                   enable_auto_commit=False, consumer_timeout_ms=10000,
                                   **client_config(kafka_server, "sasl_ssl"))
    records = list(consumer)
    consumer.close()
    worker = logs.LogConsumer(cfg, embedder, opensearchpy.OpenSearch(hosts=[cfg["opensearch_url"]]))
    assert worker._write(records) == 40
    assert worker._write(records) == 40      # the same records again (a redelivery)
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == 40


def test_an_index_of_another_dimension_is_refused_naming_the_setting(setup, embedder):
    logs, cfg, client, topic, index = setup
    wrong = index + "-768"
    _index(client, wrong, 768)
    try:
        worker = logs.LogConsumer(dict(cfg, log_index=wrong), embedder)
        worker.start()
        worker.join(60)
        assert not worker.ready.is_set()
        assert "LOG_VECTOR_INDEX=%s has dimension 768" % wrong in worker.error
        assert "gives 384" in worker.error
    finally:
        client.indices.delete(index=wrong)


@pytest.mark.parametrize("env, message", [
    ({"KAFKA_BOOTSTRAP": "h:9092", "OPENSEARCH_URL": "http://h:9200", "KAFKA_SECURITY_PROTOCOL": "SSL"},
     "KAFKA_SECURITY_PROTOCOL must be PLAINTEXT or SASL_SSL"),
    ({"OPENSEARCH_URL": "http://h:9200"}, "KAFKA_BOOTSTRAP is required"),
    ({"KAFKA_BOOTSTRAP": "h:9092", "OPENSEARCH_URL": "http://h:9200"}, "KAFKA_SASL_USER, KAFKA_SASL_PASSWORD and KAFKA_CA_FILE"),
    ({"KAFKA_BOOTSTRAP": "h:9092", "OPENSEARCH_URL": "http://h:9200", "KAFKA_CA_PEM": "not a certificate"},
     "KAFKA_CA_PEM must hold a PEM certificate"),
    ({"KAFKA_BOOTSTRAP": "h:9092", "OPENSEARCH_URL": "http://h:9200", "KAFKA_CA_FILE": "/ca.crt",
      "KAFKA_CA_PEM": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
     "KAFKA_CA_FILE and KAFKA_CA_PEM are mutually exclusive"),
])
def test_settings_are_judged_before_connecting(env, message):
    from demo_ai_service import logs
    with pytest.raises(logs.ConfigError, match=message):
        logs.settings_from_env(env)


def test_ca_pem_is_written_to_a_private_file():
    from demo_ai_service import logs
    pem = "-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----"
    cfg = logs.settings_from_env({"KAFKA_BOOTSTRAP": "h:9092", "OPENSEARCH_URL": "http://h:9200",
                                  "KAFKA_SASL_USER": "u", "KAFKA_SASL_PASSWORD": "p", "KAFKA_CA_PEM": pem})
    try:
        assert open(cfg["ca_file"]).read() == pem + "\n"
        assert oct(os.stat(cfg["ca_file"]).st_mode & 0o777) == "0o600"
    finally:
        os.unlink(cfg["ca_file"])
