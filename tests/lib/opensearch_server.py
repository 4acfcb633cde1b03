"""A real single-node OpenSearch with the k-NN plugin for tests, from Maven Central's artifacts.

``lab/artifacts/opensearch/build.sh`` assembles (once, cached under ``${AISTACK_CACHE}``) a
read-only OpenSearch home; ``OPENSEARCH_VERSION`` chooses the release (3.5.0 where a JDK 21+ is
installed, else 2.19.1 on Java 17), run by the JDK named in the home's ``JAVA_HOME_HINT``. Each server gets a temporary directory with its own
copy of ``config/``, its data, logs and JVM temp files, free HTTP and transport ports on
127.0.0.1, ``discovery.type=single-node`` and a 512 MB heap. OpenSearch refuses to run as root,
so the node runs as a system user (``aistack-ostest``, created when missing) through
``runuser -u``, as ``pg_server`` does for PostgreSQL. Stopping ends the whole process group and
removes the directory, also at interpreter exit.

The k-NN plugin from Maven Central has no faiss/nmslib native libraries: only the ``lucene``
engine can hold documents here (a faiss index with documents kills the node at its first refresh).
There is no security plugin: the node speaks plain HTTP without users.

Use the session fixture ``opensearch_server`` (a dict of module connection arguments plus
``version``), or ``OpenSearchServer`` directly.
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from lib.pg_server import ensure_system_user, free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "lab", "artifacts", "opensearch", "build.sh")
SYSTEM_USER = "aistack-ostest"
HEAP = "512m"
START_TIMEOUT = float(os.environ.get("OPENSEARCH_START_TIMEOUT", "300"))


def _jdk_feature(java_home):
    """Feature release of the JDK at ``java_home`` (its ``release`` file), or 0."""
    for line in _read(os.path.join(java_home, "release")).splitlines():
        if line.startswith("JAVA_VERSION="):
            try:
                return int(line.split("=", 1)[1].strip('"').split(".")[0])
            except ValueError:
                return 0
    return 0


def default_version():
    """OPENSEARCH_VERSION, else 3.5.0 where a JDK 21+ is installed, else 2.19.1 (Java 17)."""
    if os.environ.get("OPENSEARCH_VERSION"):
        return os.environ["OPENSEARCH_VERSION"]
    homes = [os.environ.get("OPENSEARCH_JAVA_HOME", "")]
    try:
        homes += [os.path.join("/usr/lib/jvm", name) for name in os.listdir("/usr/lib/jvm")]
    except OSError:
        pass
    return "3.5.0" if any(home and _jdk_feature(home) >= 21 for home in homes) else "2.19.1"


def opensearch_home(version=None):
    """Build (or reuse) the OpenSearch home and return its path (build.sh's last stdout line)."""
    env = dict(os.environ, OPENSEARCH_VERSION=version or default_version())
    proc = subprocess.run(["bash", BUILD], capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError("lab/artifacts/opensearch/build.sh failed (rc %d):\n%s" % (proc.returncode,
                                                                                      proc.stderr[-3000:]))
    home = lines[-1]
    if not os.access(os.path.join(home, "bin", "opensearch"), os.X_OK):
        raise RuntimeError("build.sh printed %r, which has no bin/opensearch" % home)
    return home


def _read(path, default=""):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return default


class OpenSearchServer:
    """One throw-away node. ``start()`` returns the connection info; ``stop()`` removes everything."""

    def __init__(self, heap=HEAP, base_dir=None):
        self.heap = heap
        self.base_dir = base_dir
        self.home = None
        self.tmp = None
        self.proc = None
        self.port = None
        self.info = None
        self._registered = False

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=START_TIMEOUT):
        self.home = opensearch_home()
        user = ensure_system_user(SYSTEM_USER) if os.geteuid() == 0 else None
        self.tmp = tempfile.mkdtemp(prefix="aistack-os-", dir=self.base_dir)
        if not self._registered:
            atexit.register(self.stop)
            self._registered = True
        conf = os.path.join(self.tmp, "config")
        shutil.copytree(os.path.join(self.home, "config"), conf)
        for sub in ("data", "logs", "tmp"):
            os.mkdir(os.path.join(self.tmp, sub))
        if user is not None:
            os.chmod(self.tmp, 0o700)
            for root, dirs, files in os.walk(self.tmp):
                os.chown(root, user.pw_uid, user.pw_gid)
                for name in files:
                    os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)
        self.port = free_port()
        transport = free_port()
        env = dict(os.environ)
        env.update(
            OPENSEARCH_PATH_CONF=conf,
            OPENSEARCH_TMPDIR=os.path.join(self.tmp, "tmp"),
            OPENSEARCH_JAVA_HOME=os.environ.get("OPENSEARCH_JAVA_HOME") or _read(os.path.join(self.home,
                                                                                            "JAVA_HOME_HINT")),
            # Heap for a test node; C1 only: a shorter start on two cores, fast enough for tests.
            OPENSEARCH_JAVA_OPTS="-Xms%s -Xmx%s -XX:TieredStopAtLevel=1" % (self.heap, self.heap),
        )
        env.pop("JAVA_TOOL_OPTIONS", None)
        settings = {
            "cluster.name": "aistack-test",
            "node.name": "aistack-test-1",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": transport,
            "path.data": os.path.join(self.tmp, "data"),
            "path.logs": os.path.join(self.tmp, "logs"),
            # Never block writes because the test machine's disk is fuller than production thresholds.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        cmd = [os.path.join(self.home, "bin", "opensearch")] + ["-E%s=%s" % kv for kv in sorted(settings.items())]
        if user is not None:
            cmd = ["runuser", "-u", SYSTEM_USER, "--"] + cmd
        with open(os.path.join(self.tmp, "console.log"), "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=self.tmp, start_new_session=True)
        try:
            health = self._wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        root = self.get("/")
        self.info = {"hosts": [self.url], "version": root["version"]["number"],
                     "cluster_name": health["cluster_name"]}
        return dict(self.info)

    def get(self, path, timeout=10):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def _wait_ready(self, timeout):
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("OpenSearch exited with status %s before it answered:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                return self.get("/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5)
            except (OSError, ValueError):
                pass
            if time.time() > deadline:
                raise RuntimeError("OpenSearch did not answer on %s within %ds:\n%s"
                                   % (self.url, timeout, self.log_tail()))
            time.sleep(1)

    def log_tail(self, lines=40):
        """The last ``lines`` lines of the node's console, without Java stack frames."""
        text = _read(os.path.join(self.tmp or "", "console.log"))
        return "\n".join([line for line in text.splitlines() if not line.startswith("\tat ")][-lines:])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.proc = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


@pytest.fixture(scope="session")
def opensearch_server():
    """Session-wide OpenSearch node with k-NN (lucene engine); yields module connection args + version."""
    server = OpenSearchServer()
    info = server.start()
    try:
        yield info
    finally:
        server.stop()
