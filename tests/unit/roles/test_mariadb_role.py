# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mariadb role: invalid variables fail in preflight, naming the variable, before any change;
aistack.cnf renders the seed's settings sized from memory, root's client options quote any
password, and the backup timer, backup and restore programs render as documented (bash -n
checks the scripts).

Real ansible-playbook runs against localhost: the preflight probe includes the role once per case
in check mode, limited to the `mariadb_preflight` tag (tests/lib/ansible_run.py). The server, the
backup and the restore are exercised by molecule/mariadb.
"""
import configparser
import json
import subprocess

import pytest
from lib.ansible_run import preflight_suite, render_role_templates

ROOT = "R00t-mariadb-password"
APP = "App-mariadb-password-42"
VALID = {
    "mariadb_root_password": ROOT,
    "mariadb_databases": [{"name": "app_db"}],
    "mariadb_users": [{"name": "app", "password": APP, "priv": {"app_db.*": "ALL"}}],
}
SECRETS = (ROOT, APP, "short-pw")


def _with(**changes):
    variables = dict(VALID)
    variables.update(changes)
    return variables


def _user(**changes):
    user = dict(VALID["mariadb_users"][0])
    user.update(changes)
    return _with(mariadb_users=[user])


# case id -> (variables, substrings the failure message must contain); None = must pass
CASES = {
    "valid": (VALID, None),
    "valid-no-users": (_with(mariadb_users=[], mariadb_databases=[]), None),
    "valid-global-grant": (_user(priv={"*.*": "PROCESS,RELOAD"}), None),
    "valid-settings": (_with(mariadb_settings={"long_query_time": 2, "slow-query-log": 1}), None),
    "valid-memory": (_with(mariadb_memory_mb=1024), None),
    "root-password-missing": (_with(mariadb_root_password=""), ["mariadb_root_password is missing or empty"]),
    "valid-monitoring-user": (_with(mariadb_monitoring_user_enabled=True, mariadb_monitoring_password="Monitor-mysqld-a81f03d2"), None),
    "monitoring-password-missing": (_with(mariadb_monitoring_user_enabled=True),
                                    ["mariadb_monitoring_password (mariadb_monitoring_user_enabled) is missing or empty"]),
    "monitoring-user-reserved": (_with(mariadb_monitoring_user_enabled=True, mariadb_monitoring_password="Monitor-mysqld-a81f03d2",
                                       mariadb_monitoring_user="root"),
                                 ["mariadb_monitoring_user must be 1-80 letters, digits, _ . - and not root"]),
    "root-password-placeholder": (_with(mariadb_root_password="Change_Me"), ["mariadb_root_password is left at a placeholder"]),
    "user-password-short": (_user(password="short-pw"), ["mariadb_users[0].password (user app) is shorter than 12 characters"]),
    "user-password-line-break": (_user(password="two\nlines-password"), ["mariadb_users[0].password (user app) contains a line break"]),
    "user-without-password": (_with(mariadb_users=[{"name": "app"}]), ["missing required arguments: password"]),
    "memory-above-host": (_with(mariadb_memory_mb=100000000), ["mariadb_memory_mb (100000000 MB) is above the host memory"]),
    "buffer-pool-above-memory": (_with(mariadb_memory_mb=1024, mariadb_innodb_buffer_pool_size_mb=2048),
                                 ["innodb_buffer_pool_size (2048 MB, mariadb_innodb_buffer_pool_size_mb) must be below the memory it"
                                  " is sized for (1024 MB"]),
    "buffer-pool-percent": (_with(mariadb_innodb_buffer_pool_percent=95), ["mariadb_innodb_buffer_pool_percent must be 5-80, not 95"]),
    "max-connections": (_with(mariadb_max_connections=1), ["mariadb_max_connections must be 10-100000, not 1"]),
    "owned-settings": (_with(mariadb_settings={"bind-address": "0.0.0.0", "port": 3307}),
                       ["mariadb_settings may not set bind_address, port"]),
    "setting-name": (_with(mariadb_settings={"Buffer Pool": 1}), ["mariadb_settings name Buffer Pool is not a server option name"]),
    "bind-hostname": (_with(mariadb_bind_address="localhost"), ["mariadb_bind_address must be an IPv4 or IPv6 address, not localhost"]),
    "port-range": (_with(mariadb_port=0), ["mariadb_port must be 1-65535, not 0"]),
    "database-name": (_with(mariadb_databases=[{"name": "app-db"}], mariadb_users=[]),
                      ["mariadb_databases name app-db must be 1-64 letters, digits and _"]),
    "system-database": (_with(mariadb_databases=[{"name": "mysql"}], mariadb_users=[]), ["not a system schema"]),
    "duplicate-databases": (_with(mariadb_databases=[{"name": "a"}, {"name": "a"}], mariadb_users=[]),
                            ["mariadb_databases names must be unique"]),
    "root-user": (_user(name="root"), ["mariadb_users root: name must be 1-80 letters"]),
    "grant-unknown-database": (_user(priv={"other.*": "ALL"}),
                               ["mariadb_users app: priv key other.* names a database that is not in mariadb_databases"]),
    "grant-table-level": (_user(priv={"app_db.items": "SELECT"}), ['priv key app_db.items must be "<database>.*" or "*.*"']),
    "grant-privileges": (_user(priv={"app_db.*": "ALL; DROP USER x"}),
                         ["privileges of app_db.* must be a comma-separated list"]),
    "duplicate-accounts": (_with(mariadb_users=[VALID["mariadb_users"][0], dict(VALID["mariadb_users"][0])]),
                           ["mariadb_users name@host accounts must be unique"]),
    "valid-backup-keep-days": (_with(mariadb_backup_keep_days=30), None),
    "backup-keep-days-negative": (_with(mariadb_backup_keep_days=-1),
                                  ["mariadb_backup_keep_days must be 0 (unused, the default) or more, not -1"]),
    "backup-retention-partial": (_with(mariadb_backup_retention={"weekly": 0}), None),
    "backup-retention-daily-zero": (_with(mariadb_backup_retention={"daily": 0, "weekly": 4, "monthly": 6}),
                                    ["mariadb_backup_retention.daily must be a whole number of sets, 1 or more, not 0"]),
    "backup-retention-weekly-negative": (_with(mariadb_backup_retention={"weekly": -1}),
                                         ["mariadb_backup_retention.weekly must be a whole number of sets, 0 or more, not -1"]),
    "backup-retention-monthly-fraction": (_with(mariadb_backup_retention={"monthly": 1.5}),
                                          ["mariadb_backup_retention", "monthly"]),
    "backup-retention-unknown-tier": (_with(mariadb_backup_retention={"yearly": 2}),
                                      ["mariadb_backup_retention", "yearly"]),
    "backup-dir-relative": (_with(mariadb_backup_dir="backups"), ["mariadb_backup_dir must be an absolute path"]),
    "pull-choice": (_with(mariadb_image_pull="sometimes"), ["value of mariadb_image_pull must be one of: missing, always"]),
}


PREFLIGHT = {"Validating arguments against arg spec", "Gather the memory facts", "Judge the passwords",
             "Assert that every password", "Collect invalid variables", "Assert that the variables are valid"}
(probe, test_invalid_variables_fail_naming_the_variable, test_probe_ran_only_validation_and_preflight,
 test_secrets_never_printed) = preflight_suite("mariadb", CASES, PREFLIGHT, SECRETS)


# --- Rendering -----------------------------------------------------------------------------------

TEMPLATES = ("aistack.cnf", "client.cnf", "aistack-mariadb-backup.sh", "aistack-mariadb-restore.sh",
             "aistack-mariadb-backup.service", "aistack-mariadb-backup.timer")


def _render(extra):
    variables = _with(ansible_facts={"memtotal_mb": 8192})
    variables.update(extra)
    files = render_role_templates("mariadb", TEMPLATES, variables, mode="0600",
                                  computed="{'image': _mariadb_image, 'healthcheck': _mariadb_healthcheck,"
                                           " 'validate': _mariadb_validate_config_cmd}")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(files["aistack.cnf"])
    files["server"] = dict(parser["mariadbd"])
    files["computed"] = json.loads(files["computed.json"])
    return files


@pytest.fixture(scope="module")
def default():
    return _render({})


def test_seed_settings_sized_from_memory(default):
    server = default["server"]
    assert default["aistack.cnf"].startswith("#\n# Ansible managed")
    assert server["innodb_buffer_pool_size"] == "4096M"  # half of 8192 MB
    assert server["innodb_log_file_size"] == "1024M"  # a quarter of the buffer pool
    assert server["max_connections"] == "200"
    assert server["thread_cache_size"] == "10"  # 8 + 200 / 100
    assert server["skip_name_resolve"] == "ON"
    # the container's interface
    assert server["bind_address"] == "*"
    assert server["port"] == "3306"
    assert server["datadir"] == "/var/lib/mysql"
    assert server["socket"] == "/run/mysqld/mysqld.sock"


def test_sizing_limits_and_overrides():
    small = _render({"mariadb_memory_mb": 256})["server"]
    assert small["innodb_buffer_pool_size"] == "128M"
    assert small["innodb_log_file_size"] == "64M"  # floor
    big = _render({"mariadb_innodb_buffer_pool_size_mb": 7000, "mariadb_innodb_log_file_size_mb": 512,
                   "mariadb_max_connections": 1500, "mariadb_settings": {"long_query_time": 2}})["server"]
    assert big["innodb_buffer_pool_size"] == "7000M"
    assert big["innodb_log_file_size"] == "512M"
    assert big["thread_cache_size"] == "23"
    assert big["long_query_time"] == "2"
    capped = _render({"mariadb_max_connections": 50000})["server"]
    assert capped["thread_cache_size"] == "100"


def test_root_client_options_quote_the_password():
    files = _render({"mariadb_root_password": 'R00t-"quoted"\\back'})
    lines = files["client.cnf"].splitlines()
    assert lines.count('password="R00t-\\"quoted\\"\\\\back"') == 2
    assert "[client]" in lines and "[mariadb-backup]" in lines


def test_image_health_check_and_validation(default):
    computed = default["computed"]
    assert computed["image"] == "docker.io/mariadb:11.4"
    assert computed["healthcheck"]["test"] == ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]
    assert "--network none" in computed["validate"] and computed["validate"].endswith("docker.io/mariadb:11.4 --verbose --help")


def test_backup_timer_and_scripts(default, tmp_path):
    assert "OnCalendar=*-*-* 02:00:00" in default["aistack-mariadb-backup.timer"].splitlines()
    assert "Persistent=true" in default["aistack-mariadb-backup.timer"].splitlines()
    assert "ExecStart=/usr/local/sbin/aistack-mariadb-backup" in default["aistack-mariadb-backup.service"].splitlines()
    assert "RequiresMountsFor=/var/backups/aistack-mariadb" in default["aistack-mariadb-backup.service"].splitlines()
    backup = default["aistack-mariadb-backup.sh"]
    assert "keep_daily=7\nkeep_weekly=4\nkeep_monthly=6\n" in backup
    assert "rotate=/usr/local/sbin/aistack-backup-rotate" in backup.splitlines()
    assert 'flock -n 9' in backup
    assert 'set_dir=$("$rotate" start "$backup_dir")' in backup
    assert 'out="$set_dir/mariadb.xb.gz"' in backup
    assert "mariadb-backup --defaults-extra-file=/run/secrets/aistack-mariadb/client.cnf" in backup
    assert '"$rotate" fail "$backup_dir" "$set_dir"' in backup
    assert ('"$rotate" finish "$backup_dir" "$set_dir" --daily "$keep_daily" --weekly "$keep_weekly"'
            ' --monthly "$keep_monthly"') in backup
    # the flat files of the earlier layout age out after the daily count of days
    assert "-name 'mariadb-*.xb.gz'" in backup and '-mmin +"$((keep_daily * 1440))" -print -delete' in backup
    restore = default["aistack-mariadb-restore.sh"]
    assert 'source=$("$rotate" latest "$dir" mariadb.xb.gz)' in restore
    assert '"$rotate" verify "$source"' in restore
    # the checksums are checked before the server stops
    assert restore.index('"$rotate" verify "$source"') < restore.index('docker stop')
    assert "mariadb-backup --prepare" in restore and "mariadb-backup --copy-back" in restore
    assert "{{.Config.Image}}" in restore and "{{.State.Health.Status}}" in restore
    for name in ("aistack-mariadb-backup.sh", "aistack-mariadb-restore.sh"):
        path = tmp_path / name
        path.write_text(default[name])
        assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


def test_backup_retention_counts():
    """Missing retention keys take the defaults; the deprecated keep_days still sets the daily count."""
    backup = _render({"mariadb_backup_retention": {"weekly": 0}})["aistack-mariadb-backup.sh"]
    assert "keep_daily=7\nkeep_weekly=0\nkeep_monthly=6\n" in backup
    backup = _render({"mariadb_backup_keep_days": 14,
                      "mariadb_backup_retention": {"daily": 3, "weekly": 2, "monthly": 1}})["aistack-mariadb-backup.sh"]
    assert "keep_daily=14\nkeep_weekly=2\nkeep_monthly=1\n" in backup
