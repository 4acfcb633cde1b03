# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consumer mode of the demo AI service: Kafka app-logs -> embeddings -> OpenSearch k-NN index.

A kafka-python consumer in a consumer group reads the log topics, embeds each line with
all-MiniLM-L6-v2 (embedding.py) and writes text + vector + the line's fields into the k-NN index
with the document id <topic>-<partition>-<offset>: a redelivered record overwrites its own
document, never adds a second one. Offsets are committed (synchronously) only after the bulk write
succeeded; a failed write seeks back to the batch's first offsets and tries again.

Stopping (SIGTERM from `docker stop`, which the bluegreen role sends to a slot it switches away
from): the loop finishes the batch in hand (embed, bulk, commit), then closes the consumer, which
leaves the group, so the live slot is assigned the partitions at once and resumes at the committed
offsets. Both slots are members of the same group: while they overlap during a deploy, each
partition is read by exactly one of them.

Settings (environment)
  LOG_CONSUMER_ENABLED     "1" turns consumer mode on.
  KAFKA_BOOTSTRAP          host:port[,host:port] (the internal listener, or the external SASL_SSL one)
  KAFKA_TOPICS             comma-separated (default app-logs)
  KAFKA_GROUP_ID           consumer group (default demo-ai-service-logs)
  KAFKA_SECURITY_PROTOCOL  PLAINTEXT | SASL_SSL (default SASL_SSL)
  KAFKA_SASL_USER, KAFKA_SASL_PASSWORD, KAFKA_CA_FILE   SCRAM-SHA-512 login and the CA to trust
  KAFKA_CA_PEM             the CA certificate itself (PEM) instead of KAFKA_CA_FILE, for a slot that
                           has no file mounted: written to a private file under the temp folder
  KAFKA_BATCH              records per poll, embedded in one pass, bulk-written, then committed (default 256)
  OPENSEARCH_URL           http(s)://host:9200; OPENSEARCH_USER, OPENSEARCH_PASSWORD, OPENSEARCH_CA_FILE
  LOG_VECTOR_INDEX         k-NN index of log lines (default log-vectors)
  QA_CACHE_INDEX           k-NN index of cached answers (default qa-cache)
  VECTOR_FIELD             knn_vector field of both indexes (default embedding)
"""
import json
import logging
import os
import tempfile
import threading
import time

LOG = logging.getLogger("demo_ai_service.logs")
FIELDS = ("service", "level", "@timestamp", "host", "run_id", "seq")


class ConfigError(ValueError):
    """A setting that cannot work: the message names the setting and what is allowed."""


def settings_from_env(env=None):
    env = os.environ if env is None else env
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    if protocol not in ("PLAINTEXT", "SASL_SSL"):
        raise ConfigError("KAFKA_SECURITY_PROTOCOL must be PLAINTEXT or SASL_SSL (is %s)" % protocol)
    out = {
        "bootstrap": [h.strip() for h in env.get("KAFKA_BOOTSTRAP", "").split(",") if h.strip()],
        "topics": [t.strip() for t in env.get("KAFKA_TOPICS", "app-logs").split(",") if t.strip()],
        "group_id": env.get("KAFKA_GROUP_ID", "demo-ai-service-logs"),
        "protocol": protocol,
        "user": env.get("KAFKA_SASL_USER", ""),
        "password": env.get("KAFKA_SASL_PASSWORD", ""),
        "ca_file": env.get("KAFKA_CA_FILE", ""),
        "batch": int(env.get("KAFKA_BATCH", "256")),
        "opensearch_url": env.get("OPENSEARCH_URL", ""),
        "opensearch_user": env.get("OPENSEARCH_USER", ""),
        "opensearch_password": env.get("OPENSEARCH_PASSWORD", ""),
        "opensearch_ca_file": env.get("OPENSEARCH_CA_FILE", ""),
        "log_index": env.get("LOG_VECTOR_INDEX", "log-vectors"),
        "qa_index": env.get("QA_CACHE_INDEX", "qa-cache"),
        "field": env.get("VECTOR_FIELD", "embedding"),
    }
    for key, name in (("bootstrap", "KAFKA_BOOTSTRAP"), ("topics", "KAFKA_TOPICS"),
                      ("opensearch_url", "OPENSEARCH_URL"), ("group_id", "KAFKA_GROUP_ID")):
        if not out[key]:
            raise ConfigError("%s is required in consumer mode" % name)
    pem = env.get("KAFKA_CA_PEM", "").strip()
    if pem and out["ca_file"]:
        raise ConfigError("KAFKA_CA_FILE and KAFKA_CA_PEM are mutually exclusive: give one of them")
    if pem:
        if not pem.startswith("-----BEGIN CERTIFICATE-----"):
            raise ConfigError("KAFKA_CA_PEM must hold a PEM certificate (-----BEGIN CERTIFICATE-----...)")
        out["ca_file"] = _write_ca(pem)
    if protocol == "SASL_SSL" and not (out["user"] and out["password"] and out["ca_file"]):
        raise ConfigError("KAFKA_SASL_USER, KAFKA_SASL_PASSWORD and KAFKA_CA_FILE (or KAFKA_CA_PEM) are required "
                          "with KAFKA_SECURITY_PROTOCOL=SASL_SSL")
    if not 1 <= out["batch"] <= 10000:
        raise ConfigError("KAFKA_BATCH must be between 1 and 10000 (is %d)" % out["batch"])
    return out


def _write_ca(pem):
    """KAFKA_CA_PEM to a file the TLS library can load (the temp folder: a tmpfs in a read-only slot)."""
    fd, path = tempfile.mkstemp(prefix="kafka-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as handle:
        handle.write(pem + "\n")
    return path


def opensearch_client(cfg):
    from opensearchpy import OpenSearch
    kwargs = {"hosts": [cfg["opensearch_url"]], "timeout": 30}
    if cfg["opensearch_user"]:
        kwargs["http_auth"] = (cfg["opensearch_user"], cfg["opensearch_password"])
    if cfg["opensearch_ca_file"]:
        kwargs["ca_certs"] = cfg["opensearch_ca_file"]
    return OpenSearch(**kwargs)


def check_index_dimension(client, index, field, dimension, setting):
    """Fail (ConfigError naming the setting) unless <index>.<field> is a knn_vector of `dimension`."""
    mapping = client.indices.get_mapping(index=index)
    props = next(iter(mapping.values()))["mappings"].get("properties", {})
    got = props.get(field, {})
    if got.get("type") != "knn_vector":
        raise ConfigError("%s=%s: field %s is not a knn_vector (VECTOR_FIELD)" % (setting, index, field))
    if int(got.get("dimension", 0)) != dimension:
        raise ConfigError("%s=%s has dimension %s, the embedding model (all-MiniLM-L6-v2) gives %d: create the index "
                          "with %d dimensions (logpipeline_embedding_dimension)"
                          % (setting, index, got.get("dimension"), dimension, dimension))


def document(record, field, vector):
    """The indexed document of one Kafka record: its JSON fields, the text embedded, the vector."""
    raw = record.value.decode("utf-8", "replace") if isinstance(record.value, bytes) else str(record.value)
    doc = {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        doc.update({k: parsed[k] for k in FIELDS if k in parsed})
        doc["message"] = str(parsed.get("message", raw))
    else:
        doc["message"] = raw
    doc["kafka"] = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    doc[field] = [float(v) for v in vector]
    return doc


def doc_id(record):
    return "%s-%d-%d" % (record.topic, record.partition, record.offset)


def text_of(record):
    raw = record.value.decode("utf-8", "replace") if isinstance(record.value, bytes) else str(record.value)
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    return str(parsed.get("message", raw)) if isinstance(parsed, dict) else raw


class LogConsumer(threading.Thread):
    def __init__(self, cfg, embedder, client=None):
        super().__init__(name="log-consumer", daemon=True)
        self.cfg = cfg
        self.embedder = embedder
        self.client = client
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.error = None
        self.stats = {"consumed": 0, "indexed": 0, "commits": 0, "batches": 0, "retries": 0, "closed": False,
                      "start_attempts": 0}
        # Seconds between start attempts: base x attempt, at most max.
        self.start_retry_base = 2.0
        self.start_retry_max = 15.0

    def _consumer(self):
        from kafka import KafkaConsumer
        cfg = self.cfg
        kwargs = dict(bootstrap_servers=cfg["bootstrap"], group_id=cfg["group_id"], enable_auto_commit=False,
                      auto_offset_reset="earliest", max_poll_records=cfg["batch"],
                      client_id="demo-ai-service-%s" % os.environ.get("BLUEGREEN_SLOT", "x"),
                      # Embedding a batch takes seconds on a small host; stay in the group meanwhile.
                      max_poll_interval_ms=300000, session_timeout_ms=30000)
        if cfg["protocol"] == "SASL_SSL":
            kwargs.update(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                          sasl_plain_username=cfg["user"], sasl_plain_password=cfg["password"],
                          ssl_cafile=cfg["ca_file"], ssl_check_hostname=True)
        consumer = KafkaConsumer(**kwargs)
        consumer.subscribe(cfg["topics"])
        return consumer

    def _write(self, records):
        from opensearchpy import helpers
        # The whole polled batch in one forward pass (one matrix product per layer and projection):
        # several times faster than record by record or in small chunks on a small host.
        vectors = self.embedder.encode([text_of(r) for r in records], batch_size=len(records))
        actions = [{"_op_type": "index", "_index": self.cfg["log_index"], "_id": doc_id(r),
                    "_source": document(r, self.cfg["field"], v)} for r, v in zip(records, vectors)]
        ok, errors = helpers.bulk(self.client, actions, raise_on_error=False, max_retries=3)
        if errors:
            raise RuntimeError("bulk write: %d of %d failed, first: %s" % (len(errors), len(actions), errors[0]))
        return ok

    def _start(self):
        """The OpenSearch client, the index check and the Kafka consumer; None once stopping.

        A wrong setting (ConfigError) ends the thread: /health names it until the slot is redeployed.
        Anything else (OpenSearch or Kafka not up yet: a host started before the log host, a broker
        restarting) is retried with a growing pause, /health failing with the last error meanwhile.
        """
        attempt = 0
        while not self.stopping.is_set():
            try:
                if self.client is None:
                    self.client = opensearch_client(self.cfg)
                check_index_dimension(self.client, self.cfg["log_index"], self.cfg["field"], self.embedder.dimension,
                                      "LOG_VECTOR_INDEX")
                return self._consumer()
            except ConfigError as exc:
                self.error = "%s: %s" % (type(exc).__name__, exc)
                LOG.error("log consumer not started: %s", self.error)
                return None
            except Exception as exc:
                attempt += 1
                self.stats["start_attempts"] = attempt
                self.error = "%s: %s" % (type(exc).__name__, exc)
                pause = min(self.start_retry_max, self.start_retry_base * attempt)
                LOG.warning("log consumer not started (attempt %d), retrying in %.0f s: %s", attempt, pause, self.error)
                self.stopping.wait(pause)
        return None

    def run(self):
        consumer = self._start()
        if consumer is None:
            return
        self.error = None
        self.ready.set()
        try:
            while not self.stopping.is_set():
                try:
                    polled = consumer.poll(timeout_ms=1000)
                except Exception as exc:  # the broker away for a while: keep trying, the group waits
                    self.error = "%s: %s" % (type(exc).__name__, exc)
                    LOG.warning("poll failed, retrying: %s", self.error)
                    self.stopping.wait(2)
                    continue
                records = [r for part in polled.values() for r in part]
                if not records:
                    continue
                self.stats["consumed"] += len(records)
                try:
                    self.stats["indexed"] += self._write(records)
                except Exception as exc:
                    # Nothing committed: read the batch again from its first offsets.
                    self.error = "%s: %s" % (type(exc).__name__, exc)
                    self.stats["retries"] += 1
                    LOG.warning("bulk write failed, retrying the batch: %s", self.error)
                    for tp, part in polled.items():
                        consumer.seek(tp, part[0].offset)
                    self.stopping.wait(2)
                    continue
                # The positions after this poll are exactly the records just written.
                self.stats["batches"] += 1
                try:
                    consumer.commit()
                except Exception as exc:
                    # Not committed (a rebalance took the partitions, or the coordinator is away): the
                    # next commit covers these records, or their new owner writes them again under
                    # the same ids. Either way nothing is lost and nothing is duplicated.
                    self.error = "%s: %s" % (type(exc).__name__, exc)
                    LOG.warning("commit failed: %s", self.error)
                    continue
                self.error = None
                self.stats["commits"] += 1
        except Exception as exc:
            self.error = "%s: %s" % (type(exc).__name__, exc)
            LOG.error("log consumer stopped: %s", self.error)
        finally:
            # Leave the group now (no auto-commit: everything committed was written).
            consumer.close(autocommit=False)
            self.stats["closed"] = True
            LOG.info("log consumer closed: %s", self.stats)

    def stop(self, timeout=25):
        self.stopping.set()
        self.join(timeout)


def knn_search(client, index, field, vector, k, source_excludes=None):
    body = {"size": k, "query": {"knn": {field: {"vector": [float(v) for v in vector], "k": k}}},
            "_source": {"excludes": [field] + list(source_excludes or [])}}
    hits = client.search(index=index, body=body)["hits"]["hits"]
    return [dict(h["_source"], id=h["_id"], score=h["_score"]) for h in hits]
