"""TEST DOUBLE of a Kafka broker's wire protocol: not Kafka, only what the kafka probe of
``aistack.infra.service_health`` sends.

Kafka cannot run on the project's test machine. This TCP server speaks the Kafka protocol framing
(int32 big-endian size, request header v1: api_key, api_version, correlation_id, client_id) and answers:

* ApiVersions (key 18) v0 with the configured version ranges (Metadata v0-v12 by default, or e.g. v4-v12
  to behave like Kafka 4.0, which removed Metadata v0-v3 (KIP-896));
* Metadata (key 3) v0, v1 and v4 (non-flexible layouts: v1 adds rack, controller_id and is_internal;
  v2 cluster_id; v3 throttle_time_ms; v4 allow_auto_topic_creation in the request) with the configured
  brokers and topics. Unknown topics answer error 3 (UNKNOWN_TOPIC_OR_PARTITION); a partition can be
  configured without leader (leader -1, error 5).

Like a real broker it closes the connection on a request version it does not support, and with
``auto_create_topics=True`` it creates topics that a request names when the request allows it (v0-v3
always, v4 when allow_auto_topic_creation is true) so tests can prove the probe never creates topics.
Every request is recorded in ``self.requests``.
"""
import socket
import struct
import threading

API_VERSIONS = 18
METADATA = 3


def _string(value):
    if value is None:
        return struct.pack('>h', -1)
    raw = value.encode('utf-8')
    return struct.pack('>h', len(raw)) + raw


def _array(items, encode):
    if items is None:
        return struct.pack('>i', -1)
    return struct.pack('>i', len(items)) + b''.join(encode(i) for i in items)


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, fmt):
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self):
        length = self.take('>h')
        if length < 0:
            return None
        value = self.data[self.pos:self.pos + length].decode('utf-8')
        self.pos += length
        return value

    def array(self, read):
        count = self.take('>i')
        if count < 0:
            return None
        return [read() for _ in range(count)]


class KafkaDouble:
    """A Kafka protocol double on 127.0.0.1 (see the module docstring)."""

    def __init__(self, topics=None, metadata_versions=(0, 12), cluster_id='double-cluster-id', brokers=None,
                 auto_create_topics=False):
        # topics: {name: partitions} or {name: {'partitions': n, 'leaderless': [partition ids]}}
        self.topics = {}
        for name, spec in (topics or {}).items():
            self.add_topic(name, spec)
        self.metadata_versions = metadata_versions
        self.cluster_id = cluster_id
        self._brokers = brokers
        self.auto_create_topics = auto_create_topics
        self.requests = []
        self.lock = threading.Lock()
        self._sock = None
        self._thread = None
        self._stopping = threading.Event()
        self._conns = []

    def add_topic(self, name, spec=1):
        if isinstance(spec, int):
            spec = {'partitions': spec}
        self.topics[name] = {'partitions': spec.get('partitions', 1), 'leaderless': list(spec.get('leaderless', []))}

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, name='kafka-double', daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
        for conn in list(self._conns):
            try:
                conn.close()
            except OSError:
                pass

    @property
    def port(self):
        return self._sock.getsockname()[1]

    @property
    def bootstrap(self):
        return '127.0.0.1:%d' % self.port

    @property
    def brokers(self):
        return self._brokers or [(1, '127.0.0.1', self.port, None)]

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(5)
        try:
            while not self._stopping.is_set():
                head = self._recv(conn, 4)
                if head is None:
                    return
                size = struct.unpack('>i', head)[0]
                frame = self._recv(conn, size)
                if frame is None:
                    return
                response = self._handle(frame)
                if response is None:  # unsupported version: a broker disconnects
                    return
                conn.sendall(struct.pack('>i', len(response)) + response)
        except OSError:
            return
        finally:
            conn.close()
            if conn in self._conns:
                self._conns.remove(conn)

    @staticmethod
    def _recv(conn, size):
        chunks = b''
        while len(chunks) < size:
            try:
                chunk = conn.recv(size - len(chunks))
            except socket.timeout:
                return None
            if not chunk:
                return None
            chunks += chunk
        return chunks

    # ------------------------------------------------------------------ protocol
    def _handle(self, frame):
        reader = _Reader(frame)
        api_key = reader.take('>h')
        version = reader.take('>h')
        correlation_id = reader.take('>i')
        client_id = reader.string()
        record = {'api_key': api_key, 'api_version': version, 'correlation_id': correlation_id, 'client_id': client_id}
        with self.lock:
            self.requests.append(record)
            if api_key == API_VERSIONS:
                body = self._api_versions(version)
            elif api_key == METADATA:
                low, high = self.metadata_versions
                if not low <= version <= high or version not in (0, 1, 2, 3, 4):
                    record['rejected'] = True
                    return None
                body = self._metadata(reader, version, record)
            else:
                return None
        return struct.pack('>i', correlation_id) + body

    def _api_versions(self, version):
        apis = [(API_VERSIONS, 0, 0), (METADATA,) + tuple(self.metadata_versions), (0, 3, 11), (1, 4, 17)]
        error = 0 if version == 0 else 35  # UNSUPPORTED_VERSION, answered in the v0 layout (KIP-511)
        return struct.pack('>h', error) + _array(apis, lambda a: struct.pack('>hhh', *a))

    def _metadata(self, reader, version, record):
        if version == 0:
            requested = reader.array(reader.string)
            requested = None if not requested else requested  # v0: empty array means all topics
            allow_auto = True
        else:
            requested = reader.array(reader.string)
            allow_auto = bool(reader.take('>b')) if version >= 4 else True
        record['topics'] = requested
        record['allow_auto_topic_creation'] = allow_auto
        names = sorted(self.topics) if requested is None else requested
        if self.auto_create_topics and allow_auto and requested:
            for name in requested:
                if name not in self.topics:
                    self.add_topic(name)
        out = b''
        if version >= 3:
            out += struct.pack('>i', 0)

        def broker(b):
            data = struct.pack('>i', b[0]) + _string(b[1]) + struct.pack('>i', b[2])
            if version >= 1:
                data += _string(b[3])
            return data
        out += _array(self.brokers, broker)
        if version >= 2:
            out += _string(self.cluster_id)
        if version >= 1:
            out += struct.pack('>i', self.brokers[0][0])

        def topic(name):
            spec = self.topics.get(name)
            error = 0 if spec is not None else 3
            data = struct.pack('>h', error) + _string(name)
            if version >= 1:
                data += struct.pack('>b', 1 if name.startswith('__') else 0)
            parts = []
            if spec is not None:
                for pid in range(spec['partitions']):
                    leaderless = pid in spec['leaderless']
                    leader = -1 if leaderless else self.brokers[0][0]
                    parts.append((5 if leaderless else 0, pid, leader))

            def partition(p):
                replicas = [self.brokers[0][0]]
                return (struct.pack('>hii', p[0], p[1], p[2]) + _array(replicas, lambda r: struct.pack('>i', r))
                        + _array([] if p[2] < 0 else replicas, lambda r: struct.pack('>i', r)))
            return data + _array(parts, partition)
        out += _array(names, topic)
        return out
