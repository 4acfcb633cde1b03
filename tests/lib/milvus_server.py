"""A real Milvus 2.3.5 standalone server (the ``milvus`` wheel's ``milvus-server``) for tests and benchmarks.

Usage in a test module::

    from lib.milvus_server import milvus_server  # noqa: F401

    def test_x(milvus_server):      # milvus_server is the URI, e.g. http://127.0.0.1:40123
        ...

The server starts once per pytest session (however many modules import the fixture), in a
temporary data directory, with every port it binds chosen free: the proxy and the internal
gRPC ports through ``milvus-server``'s options, and the embedded etcd's client and peer ports
through an etcd config file (``ETCD_CONFIG_PATH``; without it etcd always takes 2379/2380 and a
second server on the machine collides). etcd listens on 127.0.0.1 only; Milvus 2.3's gRPC
servers bind every interface (the release has no listen-address setting), on free ports.
Teardown stops the whole process group (the Python wrapper and the ``milvus`` binary) and
removes the data directory. ``bench/milvus_index.py`` uses ``running_milvus()`` directly.
"""
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MILVUS_SERVER = os.path.join(REPO, ".venv", "bin", "milvus-server")
# milvus-server options that set a listening port (see `milvus-server --help`).
PORT_OPTIONS = ("proxy-port", "proxy-internal-port", "root-coord-port", "query-coord-port", "query-node-port",
                "index-coord-port", "index-node-port", "data-coord-port", "data-node-port")
START_TIMEOUT = float(os.environ.get("MILVUS_START_TIMEOUT", "180"))


def free_ports(count):
    """``count`` distinct ports free on 127.0.0.1 and on the wildcard address right now."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("", 0))
            socks.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in socks:
            sock.close()
    return ports


class MilvusServer(object):
    """One ``milvus-server`` process group in its own data directory."""

    def __init__(self, base_dir=None):
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="aistack-milvus-")
        self.proc = None
        self.ports = {}
        self.uri = None
        self._log = None

    def _tail(self, name, size=3000):
        path = os.path.join(self.base_dir, "logs", name) if name != "wrapper.log" else os.path.join(self.base_dir, name)
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - size))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self, timeout=START_TIMEOUT):
        ports = free_ports(len(PORT_OPTIONS) + 2)
        self.ports = dict(zip(PORT_OPTIONS + ("etcd", "etcd-peer"), ports))
        etcd_cfg = os.path.join(self.base_dir, "embed-etcd.yaml")
        with open(etcd_cfg, "w") as fh:
            fh.write("name: default\n"
                     "listen-client-urls: http://127.0.0.1:{etcd}\n"
                     "advertise-client-urls: http://127.0.0.1:{etcd}\n"
                     "listen-peer-urls: http://127.0.0.1:{peer}\n"
                     "initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
                     "initial-cluster: default=http://127.0.0.1:{peer}\n".format(etcd=self.ports["etcd"],
                                                                                 peer=self.ports["etcd-peer"]))
        cmd = [MILVUS_SERVER, "--data", os.path.join(self.base_dir, "milvus"), "--etcd-port", str(self.ports["etcd"])]
        for opt in PORT_OPTIONS:
            cmd += ["--" + opt, str(self.ports[opt])]
        env = dict(os.environ, ETCD_CONFIG_PATH=etcd_cfg)
        self._log = open(os.path.join(self.base_dir, "wrapper.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=self.base_dir, start_new_session=True)
        self.uri = "http://127.0.0.1:%d" % self.ports["proxy-port"]
        try:
            self._wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout):
        from pymilvus import MilvusClient  # imported late: collection-time imports stay light

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("milvus-server exited with %s before it was ready\n%s\n%s"
                                   % (self.proc.returncode, self._tail("wrapper.log"), self._tail("milvus-stderr.log")))
            try:
                client = MilvusClient(uri=self.uri, timeout=3)
                try:
                    client.list_collections()
                    return
                finally:
                    client.close()
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(0.5)
        raise RuntimeError("Milvus at %s not ready after %.0f s: %s\n%s" % (self.uri, timeout, last,
                                                                            self._tail("milvus-stderr.log")))

    def _group_alive(self, pgid):
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def stop(self, grace=5.0):
        """Stop the process group (SIGTERM, then SIGKILL after ``grace`` seconds) and remove the data."""
        if self.proc is not None:
            pgid = self.proc.pid  # start_new_session: the wrapper leads its own group
            pids = self._group_pids(pgid)
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline:
                    if self.proc.poll() is not None and not self._group_alive(pgid):
                        break
                    time.sleep(0.1)
                else:
                    continue
                break
            if self.proc.poll() is None:
                self.proc.wait(timeout=5)
            self.proc = None
            for pid in pids:  # Milvus drops a server-id file in /tmp/milvus whatever MILVUS_RUN_DIR says
                with contextlib.suppress(OSError):
                    os.unlink("/tmp/milvus/server_id_%d" % pid)
            with contextlib.suppress(OSError):
                os.rmdir("/tmp/milvus")
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.base_dir, ignore_errors=True)

    @staticmethod
    def _group_pids(pgid):
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except OSError:
                pass
        return pids


@contextlib.contextmanager
def running_milvus(timeout=START_TIMEOUT):
    """Context manager: a started server (``.uri``), stopped and removed on exit."""
    server = MilvusServer()
    server.start(timeout)
    try:
        yield server
    finally:
        server.stop()


_SHARED = {"server": None, "users": 0}


def _stop_shared():
    if _SHARED["server"] is not None:
        _SHARED["server"].stop()
        _SHARED["server"] = None


atexit.register(_stop_shared)  # safety net if the session is interrupted


@pytest.fixture(scope="session")
def milvus_server():
    """URI of a Milvus 2.3.5 server shared by the whole session (started on first use)."""
    if _SHARED["server"] is None:
        _SHARED["server"] = MilvusServer().start()
    # Test modules that import this fixture each get their own session-scoped instance of it;
    # count them so that the one server lives until the last of them is torn down.
    _SHARED["users"] += 1
    try:
        yield _SHARED["server"].uri
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            _stop_shared()
