"""The demo AI service's log consumer when OpenSearch or Kafka is not up yet.

Found by `make lab` after the lab hosts were stopped and started again: lab1's slot started before
lab2's OpenSearch listened, the consumer gave up at its first connection error, and the slot stayed
unhealthy until it was redeployed. Now a connection error is retried (the slot's /health failing
meanwhile with the last error) and only a wrong setting ends the thread.

The OpenSearch client and the Kafka consumer are stand-ins here: what is tested is the start-up
logic of logs.LogConsumer. tests/integration/test_demo_ai_consumer.py runs the consumer against a
real broker and OpenSearch.
"""
import threading

from lib import embedding_model  # noqa: F401  (puts the service's package on sys.path)

from demo_ai_service import logs


class Indices:
    """get_mapping refuses `failures` times (connection refused), then answers a knn_vector mapping."""

    def __init__(self, failures, dimension):
        self.failures = failures
        self.dimension = dimension
        self.calls = 0

    def get_mapping(self, index):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("[Errno 111] Connection refused")
        return {index: {"mappings": {"properties": {"embedding": {"type": "knn_vector", "dimension": self.dimension}}}}}


class Client:
    def __init__(self, failures, dimension=384):
        self.indices = Indices(failures, dimension)


class Embedder:
    dimension = 384


class Consumer:
    """Polls nothing until closed."""

    def __init__(self):
        self.closed = threading.Event()

    def poll(self, timeout_ms):
        self.closed.wait(timeout_ms / 1000.0)
        return {}

    def close(self, autocommit):
        self.closed.set()


def make(client):
    cfg = {"log_index": "log-vectors", "field": "embedding"}
    consumer = logs.LogConsumer(cfg, Embedder(), client)
    consumer.start_retry_base = 0.01
    consumer.start_retry_max = 0.05
    kafka = Consumer()
    consumer._consumer = lambda: kafka
    return consumer


def test_connection_errors_are_retried_until_opensearch_answers():
    client = Client(failures=3)
    consumer = make(client)
    consumer.start()
    try:
        assert consumer.ready.wait(10), consumer.error
        assert consumer.is_alive()
        assert consumer.stats["start_attempts"] == 3
        assert client.indices.calls == 4
        assert consumer.error is None
    finally:
        consumer.stop(5)
    assert not consumer.is_alive()
    assert consumer.stats["closed"] is True


def test_a_wrong_setting_ends_the_thread_without_retrying():
    client = Client(failures=0, dimension=768)
    consumer = make(client)
    consumer.start()
    consumer.join(10)
    assert not consumer.is_alive()
    assert not consumer.ready.is_set()
    assert client.indices.calls == 1
    assert consumer.stats["start_attempts"] == 0
    assert consumer.error.startswith("ConfigError: LOG_VECTOR_INDEX=log-vectors has dimension 768")


def test_stopping_while_retrying_ends_the_thread_at_once():
    consumer = make(Client(failures=10**6))
    consumer.start_retry_base = consumer.start_retry_max = 30.0
    consumer.start()
    for _ in range(200):
        if consumer.stats["start_attempts"]:
            break
        threading.Event().wait(0.01)
    assert consumer.stats["start_attempts"] == 1
    assert "Connection refused" in consumer.error
    consumer.stop(5)
    assert not consumer.is_alive()
    assert not consumer.ready.is_set()
