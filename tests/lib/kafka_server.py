"""A real Kafka 4.x broker + controller (KRaft, one node) for tests, from Maven Central jars.

``lab/artifacts/kafka/build.sh`` assembles (or reuses, from ``${AISTACK_CACHE:-/var/cache/aistack}``)
the server's jars; this module formats a KRaft storage directory with ``kafka.tools.StorageTool``
(creating a SCRAM user at format time with ``--add-scram``) and runs ``kafka.Kafka`` with a heap of
at most 512 MiB, every port chosen free on 127.0.0.1, and three client listeners:

- ``PLAINTEXT``: no TLS, no authentication;
- ``SSL``: TLS only (server certificate from a CA made here);
- ``SASL_SSL``: TLS + SASL with SCRAM-SHA-512, SCRAM-SHA-256 (the same user) and PLAIN.

The CA and the server certificate (SAN 127.0.0.1 and localhost) are made with ``cryptography`` in
the server's temporary directory; the broker reads them as PEM (``ssl.keystore.type=PEM``).
The broker lets clients auto-create topics (Kafka's default), so tests can prove that a reader
never does. Usage::

    def test_x(kafka_server):
        kafka_server["plaintext"]       # '127.0.0.1:41234'
        kafka_server["sasl_ssl"]        # '127.0.0.1:41235'
        kafka_server["ssl"], kafka_server["ca_file"], kafka_server["sasl_username"], ...
        admin = kafka_admin(kafka_server)   # a kafka-python KafkaAdminClient on PLAINTEXT

The server starts once per pytest session and stops at its end (and at exit if interrupted).
"""
import atexit
import base64
import contextlib
import datetime
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

# Free on the wildcard address, hence on 127.0.0.1 too: the milvus fixture's helper serves both.
from lib.milvus_server import free_ports

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_SCRIPT = os.path.join(REPO, "lab", "artifacts", "kafka", "build.sh")
START_TIMEOUT = float(os.environ.get("KAFKA_START_TIMEOUT", "120"))
HEAP = os.environ.get("KAFKA_TEST_HEAP", "384m")
SASL_USER = "aistack-test"
# Broker settings for a throw-away one-node cluster (internal topics need replication 1).
TEST_SETTINGS = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
}


def kafka_distribution():
    """Directory of the assembled Kafka (libs/, config/, VERSION): build.sh's last stdout line."""
    proc = subprocess.run(["bash", BUILD_SCRIPT], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError("lab/artifacts/kafka/build.sh failed (rc %d):\n%s" % (proc.returncode, proc.stderr[-3000:]))
    return proc.stdout.strip().splitlines()[-1]


def make_tls(directory):
    """A CA and a server certificate for 127.0.0.1/localhost.

    Returns {'ca_file': path of the CA's PEM, 'key': the server's PKCS#8 key (PEM text), 'chain':
    its certificate and the CA's (PEM text)}. The broker takes key and chain inline
    (``ssl.keystore.key`` / ``ssl.keystore.certificate.chain``): a PEM keystore *file* must hold an
    encrypted key, and Java 17 cannot read the PBES2 encryption that current tools write.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(name("aistack test Kafka CA")).issuer_name(name("aistack test Kafka CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file = os.path.join(directory, "ca.pem")
    with open(ca_file, "wb") as fh:
        fh.write(ca_cert.public_bytes(pem))
    return {"ca_file": ca_file,
            "key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
            "chain": (cert.public_bytes(pem) + ca_cert.public_bytes(pem)).decode()}


class KafkaServer:
    """One single-node KRaft cluster in a temporary directory. ``start()`` returns the connection info."""

    def __init__(self, base_dir=None, settings=None):
        self.base_dir = base_dir
        self.settings = dict(TEST_SETTINGS if settings is None else settings)
        self.tmp = None
        self.proc = None
        self._log = None
        self.info = None

    def _java(self, dist, main, *args, heap="128m", log4j="tools-log4j2.yaml"):
        return ["java", "-Xmx%s" % heap, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true", "-Dlog4j2.configurationFile=%s" % os.path.join(dist, "config", log4j),
                "-cp", os.path.join(dist, "libs", "*"), main] + list(args)

    def start(self, timeout=START_TIMEOUT):
        dist = kafka_distribution()
        with open(os.path.join(dist, "VERSION")) as fh:
            version = fh.read().strip()
        self.tmp = tempfile.mkdtemp(prefix="aistack-kafka-", dir=self.base_dir)
        try:
            return self._start(dist, version, timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, dist, version, timeout):
        password = secrets.token_urlsafe(18)
        tls = make_tls(self.tmp)
        plaintext, ssl_port, sasl_ssl, controller = free_ports(4)
        plain_jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required user_%s="%s";'
                      % (SASL_USER, password))
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:%d" % controller,
            "listeners": "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d,SASL_SSL://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d"
                         % (plaintext, ssl_port, sasl_ssl, controller),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d,SASL_SSL://127.0.0.1:%d"
                                    % (plaintext, ssl_port, sasl_ssl),
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": os.path.join(self.tmp, "data"),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.key": tls["key"],
            "ssl.keystore.certificate.chain": tls["chain"],
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": tls["ca_file"],
            "ssl.client.auth": "none",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": plain_jaas,
        }
        props.update(self.settings)
        config = os.path.join(self.tmp, "server.properties")
        with open(config, "w") as fh:
            for key, value in props.items():
                fh.write("%s=%s\n" % (key, value.replace("\\", "\\\\").replace("\n", "\\n")))
        os.chmod(config, 0o600)
        # What `StorageTool random-uuid` prints (a random UUID, URL-safe base64 without padding), without a JVM;
        # passed as --cluster-id=ID because an id that starts with "-" is otherwise taken for an option.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        scram = ["--add-scram", "SCRAM-SHA-512=[name=%s,password=%s]" % (SASL_USER, password),
                 "--add-scram", "SCRAM-SHA-256=[name=%s,password=%s]" % (SASL_USER, password)]
        fmt = subprocess.run(self._java(dist, "kafka.tools.StorageTool", "format", "--cluster-id=" + cluster_id, "-c", config,
                                        *scram), capture_output=True, text=True, timeout=120)
        if fmt.returncode != 0:
            raise RuntimeError("kafka storage format failed (rc %d): %s%s" % (fmt.returncode, fmt.stdout, fmt.stderr))
        self._log = open(os.path.join(self.tmp, "server.log"), "wb")
        self.proc = subprocess.Popen(
            self._java(dist, "kafka.Kafka", config, heap=HEAP, log4j="log4j2.yaml"),
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.tmp)
        self.info = {
            "version": version,
            "cluster_id": cluster_id,
            "plaintext": "127.0.0.1:%d" % plaintext,
            "ssl": "127.0.0.1:%d" % ssl_port,
            "sasl_ssl": "127.0.0.1:%d" % sasl_ssl,
            "ca_file": tls["ca_file"],
            "sasl_username": SASL_USER,
            "sasl_password": password,
            "sasl_mechanisms": ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"],
            "log": os.path.join(self.tmp, "server.log"),
        }
        self._wait_ready(timeout)
        return dict(self.info)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("Kafka exited with %s before it was ready:\n%s" % (self.proc.returncode, self.log_tail()))
            if self._started():
                try:
                    admin = kafka_admin(self.info, request_timeout_ms=5000)
                    try:
                        if admin.describe_cluster().get("brokers"):
                            return
                    finally:
                        admin.close()
                except Exception as exc:  # not yet: kafka-python raises its own errors and OSError
                    last = exc
            time.sleep(0.3)
        raise RuntimeError("Kafka not ready after %.0f s (%s):\n%s" % (timeout, last, self.log_tail()))

    def _started(self):
        with open(os.path.join(self.tmp, "server.log"), errors="replace") as fh:
            return "Kafka Server started" in fh.read()

    def log_tail(self, lines=40):
        """The log's last ``lines`` lines, after its ERROR and 'Caused by' lines (why a start failed)."""
        try:
            with open(os.path.join(self.tmp, "server.log"), errors="replace") as fh:
                text = fh.readlines()
        except (OSError, TypeError):
            return ""
        causes = [line for line in text if " ERROR " in line or line.startswith("Caused by")][:10]
        return "".join(causes + ["...\n"] + text[-lines:])

    def stop(self, grace=15.0):
        """SIGTERM (controlled shutdown), SIGKILL after ``grace`` seconds; then remove the directory."""
        if self.proc is not None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def client_config(info, listener="plaintext", mechanism="SCRAM-SHA-512", password=None, **extra):
    """kafka-python client keyword arguments for one listener of ``info`` (plaintext, ssl, sasl_ssl)."""
    conf = {"bootstrap_servers": info[listener], "request_timeout_ms": 10000}
    if listener in ("ssl", "sasl_ssl"):
        conf.update(security_protocol=listener.upper(), ssl_cafile=info["ca_file"], ssl_check_hostname=True)
    if listener == "sasl_ssl":
        conf.update(sasl_mechanism=mechanism, sasl_plain_username=info["sasl_username"],
                    sasl_plain_password=info["sasl_password"] if password is None else password)
    conf.update(extra)
    return conf


def kafka_admin(info, listener="plaintext", **extra):
    """An independent kafka-python admin client (for set-up and assertions)."""
    from kafka.admin import KafkaAdminClient
    return KafkaAdminClient(**client_config(info, listener, **extra))


_SHARED = {"server": None}


def _stop_shared():
    if _SHARED["server"] is not None:
        _SHARED["server"].stop()
        _SHARED["server"] = None


atexit.register(_stop_shared)  # safety net if the session is interrupted


@pytest.fixture(scope="session")
def kafka_server():
    """Connection info of a Kafka broker shared by the whole session (started on first use)."""
    if _SHARED["server"] is None:
        server = KafkaServer()
        server.start()
        _SHARED["server"] = server
    try:
        yield dict(_SHARED["server"].info)
    finally:
        _stop_shared()
