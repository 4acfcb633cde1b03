#!/usr/bin/env python3
"""Real clients of the log pipeline for the molecule verifier: kafka-python on Kafka's external
SASL_SSL listener, opensearch-py on OpenSearch's published port.

  produce RUN_ID N   send N JSON log lines tagged run_id=RUN_ID (acks=all, flushed), as KAFKA_USER
  auth               KAFKA_USER's password is accepted; a wrong password and a PLAINTEXT client are refused
  topics             partitions, replication and configs of every topic (admin describe_configs)
  count RUN_ID N     wait (up to COUNT_TIMEOUT s) until N documents tagged RUN_ID are searchable in
                     logs-*, then wait 10 s more and count again (a late duplicate would show)
  knn                mappings of the k-NN indexes, and a k-NN query on log-vectors after indexing 3 docs
  vectors RUN_ID N   wait (up to COUNT_TIMEOUT s) until N documents tagged RUN_ID are in log-vectors (the
                     AI service's consumer), then count them, their distinct Kafka offsets and vectors
  group GROUP        the group's committed offsets against the topic's end offsets (summed over partitions)
Prints one JSON object. Settings from the environment: KAFKA_BOOTSTRAP, KAFKA_USER, KAFKA_PASSWORD,
KAFKA_CA, OPENSEARCH_URL.
"""
import json
import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError
from opensearchpy import OpenSearch

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
USER = os.environ.get("KAFKA_USER", "")
PASSWORD = os.environ.get("KAFKA_PASSWORD", "")
CA = os.environ.get("KAFKA_CA", "/etc/aistack/logpipeline/tls/ca.crt")
OPENSEARCH = os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200")
TOPIC = os.environ.get("KAFKA_TOPIC", "app-logs")
# One distinctive line among the produced ones: the verifier finds it by a k-NN query for a paraphrase.
DISTINCT_SEQ = 500
DISTINCT = "TLS handshake with the payment gateway failed: certificate expired"


def sasl(password=None, **extra):
    settings = dict(bootstrap_servers=[BOOTSTRAP], security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                    sasl_plain_username=USER, sasl_plain_password=PASSWORD if password is None else password,
                    ssl_cafile=CA, ssl_check_hostname=True,
                    # Generous: a TLS + SCRAM bootstrap on CI's loaded two cores (a refusal still comes at once).
                    request_timeout_ms=60000, bootstrap_timeout_ms=60000)
    settings.update(extra)
    return settings


def produce(run_id, n):
    producer = KafkaProducer(value_serializer=lambda v: json.dumps(v).encode(), acks="all", linger_ms=20, **sasl())
    futures = [producer.send(TOPIC, {"@timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     "service": "molecule", "level": "INFO" if i % 10 else "ERROR",
                                     "run_id": run_id, "seq": i,
                                     "message": DISTINCT if i == DISTINCT_SEQ else "request %d served in %d ms" % (i, i % 97)})
               for i in range(n)]
    producer.flush(60)
    acked = sum(1 for f in futures if f.succeeded())
    producer.close()
    return {"sent": n, "acked": acked}


def refused(settings):
    try:
        client = KafkaAdminClient(**settings)
        client.list_topics()
        client.close()
        return "accepted"
    except (KafkaError, OSError) as exc:
        return "refused: %s" % type(exc).__name__


def auth():
    return {"right": refused(sasl()),
            "wrong": refused(sasl(password=PASSWORD + "-wrong")),
            "plaintext": refused(dict(bootstrap_servers=[BOOTSTRAP], request_timeout_ms=10000))}


def topics():
    # kafka-python 3.x: describe_topics gives metadata dicts, describe_configs
    # {resource type: {name: {key: {"value": ...}}}} (only the keys set on the topic).
    admin = KafkaAdminClient(**sasl())
    out = {}
    for desc in admin.describe_topics():
        name = desc.get("name", desc.get("topic"))
        if name.startswith("__"):
            continue
        out[name] = {"partitions": len(desc["partitions"]),
                     "replication": sorted({len(p.get("replica_nodes", p.get("replicas", []))) for p in desc["partitions"]})}
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in out])
    for name, entries in described.get("topic", {}).items():
        out[name]["configs"] = {key: entry.get("value") for key, entry in entries.items()}
    admin.close()
    return out


def search():
    return OpenSearch(hosts=[OPENSEARCH], timeout=30)


def count(run_id, n, timeout):
    client = search()
    deadline = time.time() + timeout
    query = {"query": {"term": {"run_id.keyword": run_id}}}
    seen = -1
    while time.time() < deadline:
        client.indices.refresh(index="logs-*", ignore_unavailable=True, allow_no_indices=True)
        seen = client.count(index="logs-*", body=query, ignore_unavailable=True, allow_no_indices=True)["count"]
        if seen >= n:
            break
        time.sleep(2)
    time.sleep(10)
    client.indices.refresh(index="logs-*")
    final = client.count(index="logs-*", body=query)["count"]
    indexes = sorted(client.indices.get(index="logs-*").keys())
    seqs = client.search(index="logs-*", body=dict(query, size=0, aggs={"seqs": {"cardinality": {"field": "seq"}}}))
    return {"count": final, "distinct_seq": seqs["aggregations"]["seqs"]["value"], "indexes": indexes,
            "total_logs": client.count(index="logs-*")["count"]}


def knn():
    client = search()
    out = {"mappings": {}}
    for name in ("log-vectors", "qa-cache"):
        out["mappings"][name] = client.indices.get_mapping(index=name)[name]["mappings"]["properties"]["embedding"]
    dim = out["mappings"]["log-vectors"]["dimension"]
    docs = {"a": [1.0] + [0.0] * (dim - 1), "b": [0.0, 1.0] + [0.0] * (dim - 2), "c": [0.7, 0.7] + [0.0] * (dim - 2)}
    for key, vec in docs.items():
        client.index(index="log-vectors", id=key, body={"message": "line " + key, "embedding": vec}, refresh=True)
    hits = client.search(index="log-vectors", body={"size": 3, "query": {"knn": {"embedding": {
        "vector": [0.9, 0.1] + [0.0] * (dim - 2), "k": 3}}}})["hits"]["hits"]
    out["nearest"] = [h["_id"] for h in hits]
    return out


def vectors(run_id, n, timeout):
    client = search()
    deadline = time.time() + timeout
    query = {"query": {"term": {"run_id.keyword": run_id}}}
    seen = -1
    while time.time() < deadline:
        client.indices.refresh(index="log-vectors")
        seen = client.count(index="log-vectors", body=query)["count"]
        if seen >= n:
            break
        time.sleep(3)
    time.sleep(5)
    client.indices.refresh(index="log-vectors")
    aggs = {"seqs": {"cardinality": {"field": "seq"}},
            "offsets": {"cardinality": {"script": {"source": "doc['kafka.partition'].value * 1000000L + doc['kafka.offset'].value"}}}}
    result = client.search(index="log-vectors", body=dict(query, size=1, aggs=aggs))
    doc = result["hits"]["hits"][0]["_source"] if result["hits"]["hits"] else {}
    return {"count": client.count(index="log-vectors", body=query)["count"],
            "distinct_seq": result["aggregations"]["seqs"]["value"],
            "distinct_offsets": result["aggregations"]["offsets"]["value"],
            "dimension": len(doc.get("embedding", [])), "fields": sorted(doc)}


def group(group_id):
    admin = KafkaAdminClient(**sasl())
    committed = admin.list_group_offsets(group_id).get(group_id, {})
    admin.close()
    consumer = KafkaConsumer(**sasl())
    parts = [tp for tp in committed if tp.topic == TOPIC]
    end = consumer.end_offsets(parts) if parts else {}
    consumer.close()
    return {"committed": sum(committed[tp].offset for tp in parts), "end": sum(end.values()), "partitions": len(parts)}


def main():
    cmd = sys.argv[1]
    if cmd == "produce":
        result = produce(sys.argv[2], int(sys.argv[3]))
    elif cmd == "auth":
        result = auth()
    elif cmd == "topics":
        result = topics()
    elif cmd == "count":
        result = count(sys.argv[2], int(sys.argv[3]), float(os.environ.get("COUNT_TIMEOUT", "180")))
    elif cmd == "knn":
        result = knn()
    elif cmd == "vectors":
        result = vectors(sys.argv[2], int(sys.argv[3]), float(os.environ.get("COUNT_TIMEOUT", "180")))
    elif cmd == "group":
        result = group(sys.argv[2])
    else:
        raise SystemExit("unknown command " + cmd)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
