"""The redis and mysqld exporters the monitoring role runs, against a real Redis and a real MariaDB,
each logged in as the least-privilege account its role creates for monitoring.

Servers: the lab's images of redis:7.0 and mariadb:10.11 (Debian 12's packages, ``lab/images/redis``
and ``lab/images/mariadb``). Exporters: the lab's images of oliver006/redis_exporter and
prom/mysqld-exporter (Debian 12's prometheus-redis-exporter 1.45 and prometheus-mysqld-exporter
0.14, ``lab/images/redis-exporter`` and ``lab/images/mysqld-exporter``), started with the flags and
files the monitoring role gives them. Every container runs in the host's network namespace on
127.0.0.1 and a free port, under the name prefix aistack-test-i10-.

The accounts are the roles' own: the Redis ACL rules of ``_redis_monitoring_rules`` (roles/redis)
and the grants of ``_mariadb_monitoring_priv`` (roles/mariadb), read from the roles' vars files, so
a rule the exporter needs and the role forgot fails here. Each exporter must report its server up,
serve real values (keys written by the test, the server's own settings) and scrape without a
permission error; each account must be refused what it does not need (a key, a table).
"""
import os
import subprocess
import time

import pymysql
import pytest
import redis
import yaml

from lib.milvus_server import free_ports
from lib.prometheus_text import scrape

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "aistack-test-i10-"
MONITOR_USER = "aistack_monitor"
MONITOR_PASSWORD = "exporter-Test-Pass-42"
ADMIN_PASSWORD = "admin-Test-Pass-42"


def docker(*args, check=True):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=check)


def role_vars(role):
    with open(os.path.join(REPO, "roles", role, "vars", "main.yml")) as fh:
        return yaml.safe_load(fh)


def build(*names):
    proc = subprocess.run([os.path.join(REPO, "lab", "bin", "images.sh")] + list(names), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def wait_for(check, what, name, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:  # noqa: BLE001 (not up yet)
            pass
        if time.monotonic() > deadline:
            raise AssertionError("%s: not ready in %ds; docker logs %s: %s"
                                 % (what, timeout, name, docker("logs", name, check=False).stderr[-2000:]))
        time.sleep(1)


def metric(samples, name, **labels):
    values = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)]
    assert values, "%s%s not served" % (name, labels or "")
    return values[0]


@pytest.fixture(scope="module")
def images():
    build("redis", "redis-exporter", "mariadb", "mysqld-exporter")


@pytest.fixture
def containers():
    names = []
    yield names
    for name in names:
        docker("rm", "-f", name, check=False)


def test_redis_exporter_with_the_monitoring_acl_user(images, containers, tmp_path):
    rules = role_vars("redis")["_redis_monitoring_rules"].strip()
    redis_port, exporter_port = free_ports(2)
    # users.acl as the redis role writes it: the default user off, an administrator, the monitor.
    acl = tmp_path / "users.acl"
    acl.write_text("user default off resetkeys resetchannels -@all\n"
                   "user admin on >%s ~* &* +@all\n"
                   "user %s on >%s %s\n" % (ADMIN_PASSWORD, MONITOR_USER, MONITOR_PASSWORD, rules))
    acl.chmod(0o644)
    tmp_path.chmod(0o755)
    server, exporter = PREFIX + "redis", PREFIX + "redis-exporter"
    containers.extend([exporter, server])
    for name in containers:
        docker("rm", "-f", name, check=False)
    docker("run", "-d", "--name", server, "--network", "host", "-v", "%s:/acl:ro" % tmp_path,
           "aistack-lab/redis:7.0", "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
           "--aclfile", "/acl/users.acl", "--save", "", "--appendonly", "no")
    admin = redis.Redis(host="127.0.0.1", port=redis_port, username="admin", password=ADMIN_PASSWORD)
    wait_for(admin.ping, "redis", server)
    for i in range(7):
        admin.set("app:key:%d" % i, "value %d" % i)

    # The role's flags and environment (password from the environment, never on the command line).
    docker("run", "-d", "--name", exporter, "--network", "host",
           "-e", "REDIS_ADDR=redis://127.0.0.1:%d" % redis_port, "-e", "REDIS_USER=" + MONITOR_USER,
           "-e", "REDIS_PASSWORD=" + MONITOR_PASSWORD,
           "aistack-lab/redis-exporter:v1.45.0", "-web.listen-address=127.0.0.1:%d" % exporter_port)
    url = "http://127.0.0.1:%d/metrics" % exporter_port
    samples = wait_for(lambda: scrape(url), "redis exporter", exporter)

    assert metric(samples, "redis_up") == 1
    assert metric(samples, "redis_db_keys", db="db0") == 7
    assert metric(samples, "redis_connected_clients") >= 2  # the test's admin and the exporter
    assert metric(samples, "redis_config_maxclients") > 0  # CONFIG GET
    assert metric(samples, "redis_exporter_last_scrape_error") == 0
    logs = docker("logs", exporter, check=False)
    assert "NOPERM" not in logs.stdout + logs.stderr, (logs.stdout + logs.stderr)[-2000:]

    # Least privilege: the monitor reads no key, writes nothing, changes no setting.
    monitor = redis.Redis(host="127.0.0.1", port=redis_port, username=MONITOR_USER, password=MONITOR_PASSWORD)
    assert monitor.ping()
    for command in (("GET", "app:key:1"), ("SET", "x", "1"), ("CONFIG", "SET", "maxclients", "10"),
                    ("KEYS", "*"), ("FLUSHALL",), ("ACL", "LIST")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            monitor.execute_command(*command)


def test_mysqld_exporter_with_the_monitoring_account(images, containers, tmp_path):
    grants = role_vars("mariadb")["_mariadb_monitoring_priv"]
    limits = role_vars("mariadb")["_mariadb_monitoring_resource_limits"]
    db_port, exporter_port = free_ports(2)
    server, exporter = PREFIX + "mariadb", PREFIX + "mysqld-exporter"
    containers.extend([exporter, server])
    for name in containers:
        docker("rm", "-f", name, check=False)
    docker("run", "-d", "--name", server, "--network", "host", "-e", "MARIADB_ROOT_PASSWORD=" + ADMIN_PASSWORD,
           "-e", "MARIADB_ROOT_HOST=127.0.0.1", "aistack-lab/mariadb:10.11", "mariadbd", "--port", str(db_port),
           "--bind-address", "127.0.0.1", "--max-connections", "77", "--innodb-buffer-pool-size", "64M")

    def root():
        return pymysql.connect(host="127.0.0.1", port=db_port, user="root", password=ADMIN_PASSWORD, autocommit=True)

    conn = wait_for(root, "mariadb", server, timeout=120)
    with conn.cursor() as cur:
        # The account as the mariadb role's mysql_user task creates it (the host part: the exporter
        # connects from 127.0.0.1 here, from the stack network in the role).
        cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS %s",
                    (MONITOR_USER, MONITOR_PASSWORD, int(limits["MAX_USER_CONNECTIONS"])))
        for target, privs in grants.items():
            cur.execute("GRANT %s ON %s TO %%s@'127.0.0.1'" % (privs, target), (MONITOR_USER,))
        cur.execute("CREATE DATABASE app_db")
        cur.execute("CREATE TABLE app_db.t (id INT PRIMARY KEY)")
        cur.execute("SHOW GRANTS FOR %s@'127.0.0.1'", (MONITOR_USER,))
        shown = " ".join(row[0] for row in cur.fetchall())
    conn.close()
    assert "BINLOG MONITOR" in shown and "SLAVE MONITOR" in shown and "`performance_schema`.*" in shown, shown

    # my.cnf as the monitoring role writes it (readable by the exporter's user only).
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nuser = %s\npassword = \"%s\"\nhost = 127.0.0.1\nport = %d\n"
                   % (MONITOR_USER, MONITOR_PASSWORD, db_port))
    cnf.chmod(0o644)
    tmp_path.chmod(0o755)
    docker("run", "-d", "--name", exporter, "--network", "host", "-v", "%s:/etc/mysqld-exporter:ro" % tmp_path,
           "aistack-lab/mysqld-exporter:v0.14.0", "--config.my-cnf=/etc/mysqld-exporter/my.cnf",
           "--web.listen-address=127.0.0.1:%d" % exporter_port)
    url = "http://127.0.0.1:%d/metrics" % exporter_port
    samples = wait_for(lambda: scrape(url), "mysqld exporter", exporter)

    assert metric(samples, "mysql_up") == 1
    assert metric(samples, "mysql_global_variables_max_connections") == 77
    assert metric(samples, "mysql_global_status_uptime") > 0
    assert metric(samples, "mysql_global_status_threads_connected") >= 1
    # Every collector ran (slave_status needs SLAVE MONITOR on MariaDB 10.5.9+, not only REPLICATION CLIENT).
    assert {"collect.global_status", "collect.slave_status"} <= {
        dict(ls)["collector"] for (n, ls), _ in samples.items() if n == "mysql_exporter_collector_duration_seconds"}
    errors = {dict(ls)["collector"]: v for (n, ls), v in samples.items() if n == "mysql_exporter_scrape_errors_total" and v}
    assert metric(samples, "mysql_exporter_last_scrape_error") == 0 and not errors, errors
    logs = docker("logs", exporter, check=False)
    assert "denied" not in (logs.stdout + logs.stderr).lower(), (logs.stdout + logs.stderr)[-2000:]

    # Least privilege: no data, no system tables, no changes.
    monitor = pymysql.connect(host="127.0.0.1", port=db_port, user=MONITOR_USER, password=MONITOR_PASSWORD)
    with monitor.cursor() as cur:
        # Readable (empty while the server runs with performance_schema off, MariaDB's default).
        cur.execute("SELECT COUNT(*) FROM performance_schema.threads")
        assert cur.fetchone()[0] >= 0
        for statement in ("SELECT * FROM app_db.t", "SELECT user FROM mysql.user", "CREATE DATABASE x",
                          "SET GLOBAL max_connections = 10"):
            with pytest.raises(pymysql.err.MySQLError):
                cur.execute(statement)
    monitor.close()
