# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis role: invalid variables fail in preflight, naming the variable, before any change;
redis.conf and users.acl render as documented (the seed's settings, maxmemory sized from the
host, the default user disabled, passwords only as SHA-256 hashes).

Real ansible-playbook runs against localhost: the preflight probe includes the role once per case
in check mode, limited to the `redis_preflight` tag (tests/lib/ansible_run.py). The server itself
is exercised by molecule/redis.
"""
import hashlib
import json

import pytest
from lib.ansible_run import preflight_suite, render_role_templates

ADMIN = "Adm1n-redis-password"
APP = "App-redis-password-42"
VALID = {
    "redis_admin_password": ADMIN,
    "redis_users": [{"name": "app", "password": APP, "rules": "~app:* +@read +@write"}],
}
SECRETS = (ADMIN, APP, "short-pw")


def _with(**changes):
    variables = dict(VALID)
    variables.update(changes)
    return variables


# case id -> (variables, substrings the failure message must contain); None = must pass
CASES = {
    "valid": (VALID, None),
    "valid-no-app-users": (_with(redis_users=[]), None),
    "valid-ipv6-bind": (_with(redis_bind_address="fd00::10"), None),
    "valid-snapshots-off": (_with(redis_save=""), None),
    "valid-extra-setting": (_with(redis_settings={"tcp-keepalive": 60, "lazyfree-lazy-eviction": True}), None),
    "admin-password-missing": (_with(redis_admin_password=""), ["redis_admin_password is missing or empty"]),
    "valid-monitoring-user": (_with(redis_monitoring_user_enabled=True, redis_monitoring_password="Monitor-redis-5c2e81aa"), None),
    "monitoring-password-missing": (_with(redis_monitoring_user_enabled=True),
                                    ["redis_monitoring_password (redis_monitoring_user_enabled) is missing or empty"]),
    "monitoring-user-clash": (_with(redis_monitoring_user_enabled=True, redis_monitoring_password="Monitor-redis-5c2e81aa",
                                    redis_monitoring_user="app"),
                              ["redis_admin_user, redis_monitoring_user and the redis_users names must be unique"]),
    "admin-password-placeholder": (_with(redis_admin_password="foobared"), ["redis_admin_password is left at a placeholder"]),
    "user-password-placeholder": (_with(redis_users=[{"name": "app", "password": "CHANGE-ME"}]),
                                  ["redis_users[0].password (user app) is left at a placeholder"]),
    "user-password-short": (_with(redis_users=[{"name": "app", "password": "short-pw"}]),
                            ["redis_users[0].password (user app) is shorter than 12 characters"]),
    "user-without-password": (_with(redis_users=[{"name": "app"}]), ["missing required arguments: password"]),
    "maxmemory-above-host": (_with(redis_maxmemory_mb=100000000),
                             ["redis_maxmemory_mb (100000000 MB) must be below the host memory"]),
    "maxmemory-tiny": (_with(redis_maxmemory_mb=8), ["maxmemory must be at least 16 MB (is 8 MB"]),
    "maxmemory-percent": (_with(redis_maxmemory_percent=95), ["redis_maxmemory_percent must be 1-90, not 95"]),
    "bad-policy": (_with(redis_maxmemory_policy="allkeys-sometimes"),
                   ["value of redis_maxmemory_policy must be one of: noeviction, allkeys-lru"]),
    "bad-save": (_with(redis_save="every 5 minutes"), ['redis_save must be "<seconds> <changes>" pairs']),
    "odd-save": (_with(redis_save="900 1 300"), ['redis_save must be "<seconds> <changes>" pairs']),
    "bind-hostname": (_with(redis_bind_address="localhost"),
                      ["redis_bind_address must be an IPv4 or IPv6 address, not localhost"]),
    "port-range": (_with(redis_port=70000), ["redis_port must be 1-65535, not 70000"]),
    "owned-settings": (_with(redis_settings={"bind": "0.0.0.0", "requirepass": "x"}),
                       ["redis_settings may not set bind, requirepass"]),
    "setting-name": (_with(redis_settings={"Max Memory": 1}), ["redis_settings name Max Memory is not a redis.conf directive"]),
    "reserved-user": (_with(redis_users=[{"name": "default", "password": APP}]), ["user name default is reserved"]),
    "healthcheck-user": (_with(redis_users=[{"name": "healthcheck", "password": APP}]), ["user name healthcheck is reserved"]),
    "duplicate-users": (_with(redis_users=[{"name": "admin", "password": APP}]),
                        ["redis_admin_user, redis_monitoring_user and the redis_users names must be unique"]),
    "user-name": (_with(redis_users=[{"name": "my app", "password": APP}]), ["user name my app (redis_admin_user / redis_monitoring_user / redis_users)"]),
    "rules-with-password": (_with(redis_users=[{"name": "app", "password": APP, "rules": "~* +@all >other-password"}]),
                            ["redis_users app: rules may not hold password or on/off/reset rules"]),
    "rules-with-nopass": (_with(redis_users=[{"name": "app", "password": APP, "rules": "nopass ~* +@all"}]),
                          ["redis_users app: rules may not hold password"]),
    "config-dir-relative": (_with(redis_config_dir="etc/redis"), ["redis_config_dir must be an absolute path"]),
}


PREFLIGHT = {"Validating arguments against arg spec", "Gather the memory facts", "Judge the passwords",
             "Assert that every password", "Collect invalid variables", "Assert that the variables are valid"}
(probe, test_invalid_variables_fail_naming_the_variable, test_probe_ran_only_validation_and_preflight,
 test_secrets_never_printed) = preflight_suite("redis", CASES, PREFLIGHT, SECRETS)


# --- Rendering -----------------------------------------------------------------------------------

def _render(extra):
    variables = _with(ansible_facts={"memtotal_mb": 8192})
    variables.update(extra)
    files = render_role_templates("redis", ("redis.conf", "users.acl"), variables,
                                  computed="{'image': _redis_image, 'healthcheck': _redis_healthcheck,"
                                           " 'healthcheck_password': _redis_healthcheck_password}")
    files["directives"] = dict(line.split(" ", 1) for line in files["redis.conf"].splitlines() if line and not line.startswith("#"))
    files["computed"] = json.loads(files["computed.json"])
    return files


@pytest.fixture(scope="module")
def default():
    return _render({})


def test_seed_settings_and_sizing(default):
    conf = default["directives"]
    assert default["redis.conf"].startswith("#\n# Ansible managed")
    # 25 % of the host's 8192 MB
    assert conf["maxmemory"] == "2048mb"
    assert conf["maxmemory-policy"] == "allkeys-lru"
    assert conf["save"] == "900 1 300 10 60 10000"
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] == "everysec"
    assert conf["protected-mode"] == "yes"
    # the container's interface: all of its own addresses (published on 127.0.0.1 by Docker), data in /data
    assert conf["bind"] == "* -::*"
    assert conf["port"] == "6379"
    assert conf["dir"] == "/data"
    assert conf["aclfile"] == "/usr/local/etc/redis/users.acl"
    assert "requirepass" not in conf


def test_acl_users(default):
    lines = default["users.acl"].splitlines()
    sha = lambda s: hashlib.sha256(s.encode()).hexdigest()  # noqa: E731
    health = default["computed"]["healthcheck_password"]
    assert lines == [
        "user default reset off resetkeys resetchannels -@all",
        "user admin reset on #%s ~* &* +@all" % sha(ADMIN),
        "user healthcheck reset on #%s resetkeys resetchannels -@all +ping" % sha(health),
        "user app reset on #%s ~app:* +@read +@write" % sha(APP),
    ]
    # no password in clear, and the health check's is not the administrator's
    assert ADMIN not in default["users.acl"] and APP not in default["users.acl"]
    assert health != ADMIN and ADMIN not in health


def test_image_and_health_check(default):
    computed = default["computed"]
    assert computed["image"] == "docker.io/redis:7.4"
    test = computed["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "--user healthcheck" in test[1] and "healthcheck.pass" in test[1]


def test_variables_override():
    files = _render({"redis_maxmemory_mb": 300, "redis_maxmemory_policy": "volatile-lfu", "redis_save": "",
                     "redis_appendonly": False, "aistack_image_registry": "172.31.213.2:5000", "redis_image_tag": "7.0",
                     "redis_settings": {"tcp-keepalive": 60, "lazyfree-lazy-eviction": True},
                     "redis_users": [{"name": "app", "password": APP}]})
    conf = files["directives"]
    assert conf["maxmemory"] == "300mb"
    assert conf["maxmemory-policy"] == "volatile-lfu"
    assert conf["save"] == '""'
    assert conf["appendonly"] == "no"
    assert conf["tcp-keepalive"] == "60"
    assert conf["lazyfree-lazy-eviction"] == "yes"
    assert files["computed"]["image"] == "172.31.213.2:5000/redis:7.0"
    assert files["users.acl"].splitlines()[-1].endswith(" ~* &* +@all -@admin -@dangerous")


def test_monitoring_acl_user():
    """The exporter's user: after the health check, its password hashed, only the rules of
    _redis_monitoring_rules (no key, no channel; tests/integration/test_redis_mysqld_exporters.py runs
    the exporter with them)."""
    password = "Monitor-redis-5c2e81aa"
    files = _render({"redis_monitoring_user_enabled": True, "redis_monitoring_password": password})
    line = files["users.acl"].splitlines()[3]
    assert line.startswith("user aistack_monitor reset on #%s resetkeys resetchannels -@all +ping +info +config|get "
                           % hashlib.sha256(password.encode()).hexdigest()), line
    assert password not in files["users.acl"] and "~" not in line and "&" not in line and "@read" not in line
