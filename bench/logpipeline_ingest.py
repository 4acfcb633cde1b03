#!/usr/bin/env python3
"""End-to-end ingest of the log pipeline: produce -> searchable, against a direct baseline.

One command, nothing else running:  .venv/bin/python bench/logpipeline_ingest.py

It starts its own real servers with the test fixtures (tests/lib/kafka_server.py: Kafka 4.x KRaft;
tests/lib/opensearch_server.py: OpenSearch with k-NN) on 127.0.0.1, and the lab's rsyslog shipper
image (aistack-lab/rsyslog-shipper, `lab/bin/lab.sh prepare rsyslog-shipper`) in host networking
with the configuration rendered from roles/logpipeline/templates/rsyslog.conf.j2 (the role's file;
the fixture's ports replace the role's container names and port 9200).

  pipeline  kafka-python producer -> Kafka (PLAINTEXT) -> rsyslog imkafka consumer group
            -> omelasticsearch bulk -> logs-YYYY.MM.dd
  baseline  kafka-python producer -> Kafka (topic bench-direct, which the shipper does not read), and
            the same documents written by opensearch-py helpers.bulk straight into an index (no
            consumer, no shipper): what a client that writes OpenSearch itself gets, measured in the
            same run on the same servers.

Two phases per path: throughput (BENCH_BURST messages as fast as the producer goes; msg/s from the
first send until the last message is searchable) and latency at a paced BENCH_RATE msg/s for
BENCH_SECONDS (p50/p99 of send -> first seen by a search; searches poll every 100 ms, OpenSearch's
refresh interval is 1 s). Prints one JSON object: figures, ratios and the targets
(pipeline throughput >= 0.5 x baseline, pipeline p99 < 5 s at 1,000 msg/s).
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from lib.kafka_server import KafkaServer  # noqa: E402
from lib.opensearch_server import OpenSearchServer  # noqa: E402

BURST = int(os.environ.get("BENCH_BURST", "20000"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "300"))
SHIPPER_IMAGE = os.environ.get("BENCH_SHIPPER_IMAGE", "aistack-lab/rsyslog-shipper:8.2302")
SHIPPER = "aistack-bench-logpipeline-shipper"
TOPIC = "app-logs"
# The baseline's producer writes to a topic that the shipper does not read.
DIRECT_TOPIC = "bench-direct"


def render_rsyslog(kafka_bootstrap, opensearch_port):
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(REPO, "roles", "logpipeline", "templates")),
                             keep_trailing_newline=True)
    env.filters["comment"] = lambda text: "\n".join("# " + line for line in str(text).splitlines())
    text = env.get_template("rsyslog.conf.j2").render(
        ansible_managed="rendered by bench/logpipeline_ingest.py", logpipeline_shipper_topics=[TOPIC],
        logpipeline_shipper_group_id="logpipeline-shipper", logpipeline_opensearch_logs_prefix="logs",
        logpipeline_opensearch_container_name="127.0.0.1", _logpipeline_kafka_internal_bootstrap=kafka_bootstrap,
        logpipeline_rsyslog_container_name=SHIPPER)
    return text.replace('serverport="9200"', 'serverport="%d"' % opensearch_port)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))] if ordered else None


class Watcher(threading.Thread):
    """Polls the index every 100 ms and records when each seq of a run first became searchable."""

    def __init__(self, client, index, run_id, n):
        super().__init__(daemon=True)
        self.client, self.index, self.run_id, self.n = client, index, run_id, n
        self.seen = {}
        self.low = 0
        self.done = threading.Event()

    def run(self):
        deadline = time.time() + TIMEOUT
        while len(self.seen) < self.n and time.time() < deadline:
            try:
                # search_after over seq: every document of the run not seen yet, in pages.
                # Only from the lowest seq not seen yet: each poll reads what is new, not the whole run.
                low = next((seq for seq in range(self.low, self.n) if seq not in self.seen), self.n)
                self.low = low
                body = {"size": 10000, "_source": False, "docvalue_fields": ["seq"], "sort": [{"seq": "asc"}],
                        "query": {"bool": {"filter": [{"term": {"run_id": self.run_id}},
                                                      {"range": {"seq": {"gte": low}}}]}}}
                after = None
                while True:
                    if after is not None:
                        body["search_after"] = [after]
                    hits = self.client.search(index=self.index, body=body, ignore_unavailable=True)["hits"]["hits"]
                    now = time.time()
                    for hit in hits:
                        self.seen.setdefault(hit["fields"]["seq"][0], now)
                    if len(hits) < 10000:
                        break
                    after = hits[-1]["sort"][0]
            except Exception:  # the index may not exist yet
                pass
            time.sleep(0.1)
        self.done.set()


def produce(producer, client, run_id, n, rate, direct_index):
    """Sends n lines (paced at rate/s when rate), returns {seq: send time}; with direct_index, bulk-writes them too."""
    from opensearchpy import helpers
    sent = {}
    futures = []
    start = time.time()
    batch = []
    for seq in range(n):
        if rate:
            delay = start + seq / float(rate) - time.time()
            if delay > 0:
                time.sleep(delay)
        now = time.time()
        doc = {"@timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "service": "bench",
               "level": "INFO", "run_id": run_id, "seq": seq, "message": "request %d served in %d ms" % (seq, seq % 97)}
        futures.append(producer.send(DIRECT_TOPIC if direct_index else TOPIC, doc))
        sent[seq] = now
        if direct_index:
            batch.append({"_index": direct_index, "_source": doc})
            if len(batch) >= (max(1, rate // 10) if rate else 500):
                helpers.bulk(client, batch)
                batch = []
    producer.flush(60)
    if batch:
        helpers.bulk(client, batch)
    # A line Kafka never acknowledged cannot arrive: counted apart from the pipeline's losses.
    failed = [f.exception for f in futures if f.is_done and f.failed()]
    return sent, start, {"acked": sum(1 for f in futures if f.is_done and f.succeeded()),
                         "send_errors": sorted({"%s: %s" % (type(e).__name__, e) for e in failed})[:3]}


def measure(producer, client, index, direct, rate, n):
    run_id = uuid.uuid4().hex[:12]
    watcher = Watcher(client, index, run_id, n)
    watcher.start()
    sent, start, acks = produce(producer, client, run_id, n, rate, index if direct else None)
    watcher.done.wait(TIMEOUT + 10)
    latencies = [watcher.seen[s] - sent[s] for s in sent if s in watcher.seen]
    last = max(watcher.seen.values()) if watcher.seen else None
    missing = [s for s in range(n) if s not in watcher.seen]
    return {"messages": n, "searchable": len(watcher.seen), **acks, "missing_seq": missing[:20],
            "msg_per_s": round(len(watcher.seen) / (last - start), 1) if last else 0.0,
            "p50_s": round(percentile(latencies, 50), 3) if latencies else None,
            "p99_s": round(percentile(latencies, 99), 3) if latencies else None}


def main():
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    from opensearchpy import OpenSearch

    kafka = KafkaServer()
    search = OpenSearchServer()
    tmp = tempfile.mkdtemp(prefix="aistack-bench-")
    result = {"burst": BURST, "rate": RATE, "seconds": SECONDS, "shipper_image": SHIPPER_IMAGE}
    try:
        kinfo = kafka.start()
        sinfo = search.start()
        result["versions"] = {"opensearch": sinfo["version"]}
        admin = KafkaAdminClient(bootstrap_servers=kinfo["plaintext"])
        admin.create_topics([NewTopic(TOPIC, 3, 1), NewTopic(DIRECT_TOPIC, 3, 1)])
        admin.close()
        client = OpenSearch(hosts=sinfo["hosts"], timeout=60)
        # What the role's logs-* template sets (one shard, no replica), for both paths.
        client.indices.put_index_template(name="bench", body={"index_patterns": ["logs-*", "direct-*"], "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"run_id": {"type": "keyword"}, "seq": {"type": "long"}}}}})
        conf = os.path.join(tmp, "rsyslog.conf")
        with open(conf, "w") as fh:
            fh.write(render_rsyslog(kinfo["plaintext"], int(sinfo["hosts"][0].rsplit(":", 1)[1])))
        os.chmod(conf, 0o644)
        os.chmod(tmp, 0o755)
        subprocess.run(["docker", "rm", "-f", SHIPPER], capture_output=True)
        subprocess.run(["docker", "run", "-d", "--name", SHIPPER, "--network", "host",
                        "-v", conf + ":/etc/rsyslog.conf:ro", SHIPPER_IMAGE], check=True, capture_output=True)
        producer = KafkaProducer(bootstrap_servers=kinfo["plaintext"], acks="all", linger_ms=5,
                                 value_serializer=lambda v: json.dumps(v).encode())
        # Warm-up: the shipper joins its group and creates today's index.
        measure(producer, client, "logs-*", False, 0, 200)
        measure(producer, client, "direct-bench", True, 0, 200)
        result["pipeline_burst"] = measure(producer, client, "logs-*", False, 0, BURST)
        result["baseline_burst"] = measure(producer, client, "direct-bench", True, 0, BURST)
        result["pipeline_paced"] = measure(producer, client, "logs-*", False, RATE, RATE * SECONDS)
        result["baseline_paced"] = measure(producer, client, "direct-bench", True, RATE, RATE * SECONDS)
        producer.close()
        ratio = result["pipeline_burst"]["msg_per_s"] / max(result["baseline_burst"]["msg_per_s"], 0.001)
        result["throughput_ratio"] = round(ratio, 2)
        result["targets"] = {
            "throughput_ratio_ge_0.5": ratio >= 0.5,
            "pipeline_p99_lt_5s_at_rate": result["pipeline_paced"]["p99_s"] is not None and result["pipeline_paced"]["p99_s"] < 5.0,
            "all_searchable": all(result[k]["searchable"] == result[k]["messages"]
                                  for k in ("pipeline_burst", "baseline_burst", "pipeline_paced", "baseline_paced")),
        }
        result["load_average"] = os.getloadavg()
        # What the shipper says about lines it could not index: bulk items OpenSearch refused
        # (omelasticsearch's errorFile) and its own error messages.
        errors = subprocess.run(["docker", "exec", SHIPPER, "sh", "-c", "cat /var/spool/rsyslog/opensearch-errors.json 2>/dev/null"],
                                capture_output=True, text=True).stdout.splitlines()
        logs = subprocess.run(["docker", "logs", SHIPPER], capture_output=True, text=True)
        result["shipper"] = {"bulk_error_records": len(errors), "first_bulk_error": errors[0][:2000] if errors else None,
                             "log_errors": [line[:300] for line in (logs.stdout + logs.stderr).splitlines()
                                            if "error" in line.lower() or "suspend" in line.lower()][:10]}
    finally:
        subprocess.run(["docker", "rm", "-f", SHIPPER], capture_output=True)
        search.stop()
        kafka.stop()
        subprocess.run(["rm", "-rf", tmp])
    print(json.dumps(result, indent=2))
    return 0 if all(result.get("targets", {"ran": False}).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
