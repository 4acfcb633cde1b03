# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics of the demo AI service (GET /metrics), read by aistack.infra.monitoring's
job ai_consumer through each blue-green slot's port.

Consumer mode adds, for its consumer group:
  aistack_consumer_lag{group, topic, partition}         end offset - committed offset (the whole
                                                          partition while the group has committed
                                                          nothing: it reads from the earliest)
  aistack_consumer_lag_read_success{group}              1 when the last lag read reached the brokers
  aistack_consumer_messages_consumed_total{group}       log lines this slot polled
  aistack_consumer_messages_indexed_total{group}        lines this slot wrote into the k-NN index
  aistack_consumer_commits_total{group}, aistack_consumer_retries_total{group}
  aistack_consumer_alive{group}                         1 while the consumer thread runs

The lag is read from outside the consumer thread, the way a lag exporter reads it: the group's
committed offsets (admin client) and the partitions' end offsets (a consumer outside any group), on
connections of its own, so a stuck consumer still shows its lag growing. Every slot of the group
reports the same lag: the alert rules take the max per partition. Reads are cached for
LAG_CACHE_SECONDS (default 5) so that scrapes do not load the brokers.
"""
import logging
import os
import threading
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LOG = logging.getLogger("demo_ai_service.metrics")


def kafka_connection(cfg):
    """kafka-python connection settings of consumer mode (the same login as the consumer's)."""
    kwargs = dict(bootstrap_servers=cfg["bootstrap"], client_id="demo-ai-service-lag-%s" % os.environ.get("BLUEGREEN_SLOT", "x"))
    if cfg["protocol"] == "SASL_SSL":
        kwargs.update(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                      sasl_plain_username=cfg["user"], sasl_plain_password=cfg["password"],
                      ssl_cafile=cfg["ca_file"], ssl_check_hostname=True)
    return kwargs


class LagReader:
    """{(topic, partition): lag} of a consumer group, cached for ``ttl`` seconds."""

    def __init__(self, cfg, ttl=None):
        self.cfg = cfg
        self.ttl = float(os.environ.get("LAG_CACHE_SECONDS", "5")) if ttl is None else ttl
        self.lock = threading.Lock()
        self.admin = self.offsets = None
        self.read_at = 0.0
        self.lag = {}
        self.ok = False

    def _clients(self):
        if self.admin is None:
            from kafka import KafkaAdminClient, KafkaConsumer
            self.admin = KafkaAdminClient(**kafka_connection(self.cfg))
            self.offsets = KafkaConsumer(enable_auto_commit=False, **kafka_connection(self.cfg))
        return self.admin, self.offsets

    def _read(self):
        from kafka import TopicPartition
        admin, offsets = self._clients()
        partitions = [TopicPartition(topic, p) for topic in self.cfg["topics"]
                      for p in sorted(offsets.partitions_for_topic(topic) or ())]
        if not partitions:
            return {}
        committed = admin.list_group_offsets(self.cfg["group_id"]).get(self.cfg["group_id"], {})
        ends = offsets.end_offsets(partitions)
        missing = [tp for tp in partitions if committed.get(tp) is None or committed[tp].offset < 0]
        starts = offsets.beginning_offsets(missing) if missing else {}
        return {(tp.topic, tp.partition): max(ends[tp] - (starts[tp] if tp in starts else committed[tp].offset), 0)
                for tp in partitions}

    def read(self):
        with self.lock:
            if time.monotonic() - self.read_at >= self.ttl:
                try:
                    self.lag, self.ok = self._read(), True
                except Exception as exc:  # brokers away: report the failure, keep serving
                    LOG.warning("consumer lag not read: %s: %s", type(exc).__name__, exc)
                    self.ok = False
                    self.close()
                self.read_at = time.monotonic()
            return dict(self.lag), self.ok

    def close(self):
        for client in (self.admin, self.offsets):
            try:
                if client is not None:
                    client.close()
            except Exception:  # noqa: BLE001 (closing a broken connection)
                pass
        self.admin = self.offsets = None


class ConsumerCollector:
    """The consumer thread's counters and the group's lag, at each scrape."""

    def __init__(self, logs):
        self.logs = logs
        self.lag = LagReader(logs.cfg)

    def collect(self):
        group = self.logs.cfg["group_id"]
        stats = self.logs.consumer.stats
        alive = GaugeMetricFamily("aistack_consumer_alive", "1 while the log consumer thread runs", labels=["group"])
        alive.add_metric([group], 1 if self.logs.consumer.is_alive() else 0)
        yield alive
        for key, text in (("consumed", "Log lines polled from Kafka by this slot"),
                          ("indexed", "Log lines this slot wrote into the k-NN index")):
            counter = CounterMetricFamily("aistack_consumer_messages_%s" % key, text, labels=["group"])
            counter.add_metric([group], stats.get(key, 0))
            yield counter
        for key, text in (("commits", "Offset commits after a written batch"),
                          ("retries", "Batches written again after a failed bulk write")):
            counter = CounterMetricFamily("aistack_consumer_%s" % key, text, labels=["group"])
            counter.add_metric([group], stats.get(key, 0))
            yield counter
        lag, ok = self.lag.read()
        success = GaugeMetricFamily("aistack_consumer_lag_read_success", "1 when the last lag read reached Kafka",
                                    labels=["group"])
        success.add_metric([group], 1 if ok else 0)
        yield success
        gauge = GaugeMetricFamily("aistack_consumer_lag", "End offset minus the group's committed offset",
                                  labels=["group", "topic", "partition"])
        for (topic, partition), value in sorted(lag.items()):
            gauge.add_metric([group, topic, str(partition)], value)
        yield gauge


def registry(logs=None):
    """A registry with the consumer's metrics (consumer mode) and nothing else."""
    out = CollectorRegistry(auto_describe=False)
    if logs is not None:
        out.register(ConsumerCollector(logs))
    return out


def exposition(reg):
    return generate_latest(reg), CONTENT_TYPE_LATEST
