# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pgvector role: invalid variables fail in preflight, naming the variable, before any change;
and postgresql.conf / pg_hba.conf render as documented.

Real ansible-playbook runs against localhost. The preflight probe includes the role once per case
in a block whose rescue records the failure message, in check mode and limited to the
`pgvector_preflight` tag: only argument validation and the preflight assertions can run, so
nothing of the role touches this machine even if a case were wrongly accepted. The render test
templates the role's own templates with its defaults and vars into a temporary directory.
"""
import json
import os
import re
import subprocess

import pytest
from lib.ansible_run import preflight_suite, render_role_templates

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(REPO, "roles", "pgvector")

VALID = {
    "pgvector_superuser_password": "a-good-password-123",
    "pgvector_roles": [{"name": "app", "password": "another-good-pw-1"}, {"name": "viewer", "password": "viewer-pw-9876"}],
    "pgvector_databases": [{"name": "rag", "owner": "app", "readers": ["viewer"]}],
    "pgvector_tables": [{"database": "rag", "name": "documents", "indexes": [{"method": "hnsw", "opclass": "vector_cosine_ops"}]}],
}


def _with(**changes):
    variables = dict(VALID)
    variables.update(changes)
    return variables


def _without(name):
    return {k: v for k, v in VALID.items() if k != name}


# case id -> (variables, substrings the failure message must contain); None = must pass
CASES = {
    "valid": (VALID, None),
    "superuser-password-missing": (_without("pgvector_superuser_password"),
                                   ["missing required arguments: pgvector_superuser_password"]),
    "superuser-password-empty": (_with(pgvector_superuser_password=""),
                                 ["pgvector_superuser_password is missing or empty"]),
    "superuser-password-blank": (_with(pgvector_superuser_password="   "),
                                 ["pgvector_superuser_password is missing or empty"]),
    "superuser-password-placeholder": (_with(pgvector_superuser_password="CHANGE_ME"),
                                       ["pgvector_superuser_password is left at a placeholder"]),
    "superuser-password-changeme-suffix": (_with(pgvector_superuser_password="changeme-later-2024"),
                                           ["pgvector_superuser_password is left at a placeholder"]),
    "superuser-password-short": (_with(pgvector_superuser_password="tiny-secret"),
                                 ["pgvector_superuser_password is shorter than 12 characters"]),
    "role-password-placeholder": (_with(pgvector_roles=[{"name": "app", "password": "Password"},
                                                        {"name": "viewer", "password": "viewer-pw-9876"}]),
                                  ["pgvector_roles[0].password (role app) is left at a placeholder"]),
    "role-password-missing": (_with(pgvector_roles=[{"name": "app"}]),
                              ["missing required arguments: password", "pgvector_roles"]),
    "fixed-setting": (_with(pgvector_settings={"listen_addresses": "*", "work_mem": "8MB"}),
                      ["pgvector_settings may not set listen_addresses"]),
    "maintenance-work-mem": (_with(pgvector_settings={"maintenance_work_mem": "2 gigs"}),
                             ["pgvector_settings.maintenance_work_mem must be", "not 2 gigs"]),
    "bind-hostname": (_with(pgvector_bind_address="localhost"),
                      ["pgvector_bind_address must be an IPv4 address, not localhost"]),
    "port-range": (_with(pgvector_port=70000), ["pgvector_port must be 1-65535, not 70000"]),
    "hba-network": (_with(pgvector_hba_allowed_networks=["10.1.2.0/24", "10.0.0.0"]),
                    ["pgvector_hba_allowed_networks must hold CIDRs, not 10.0.0.0"]),
    "data-path-relative": (_with(pgvector_data_path="data/pg"),
                           ["pgvector_data_path must be empty or an absolute path"]),
    "owner-unknown": (_with(pgvector_databases=[{"name": "rag", "owner": "nobody"}]),
                      ["pgvector_databases rag: owner nobody is not in pgvector_roles"]),
    "reader-unknown": (_with(pgvector_databases=[{"name": "rag", "owner": "app", "readers": ["ghost"]}]),
                       ["pgvector_databases rag: reader ghost is not in pgvector_roles"]),
    "database-name": (_with(pgvector_databases=[{"name": "postgres"}], pgvector_tables=[]),
                      ["pgvector_databases name postgres must be a lower-case identifier"]),
    "table-database-unmanaged": (_with(pgvector_tables=[{"database": "other", "name": "documents"}]),
                                 ["pgvector_tables other.documents: database must be one of pgvector_databases (rag)"]),
    "table-dimensions": (_with(pgvector_tables=[{"database": "rag", "name": "documents", "dimensions": 20000}]),
                         ["pgvector_tables rag.documents: dimensions must be 1-16000"]),
    "index-method": (_with(pgvector_tables=[{"database": "rag", "name": "documents", "indexes": [{"method": "diskann"}]}]),
                     ["value of method must be one of: hnsw, ivfflat, got: diskann"]),
    "index-unknown-option": (_with(pgvector_tables=[{"database": "rag", "name": "documents", "indexes": [{"metod": "hnsw"}]}]),
                             ["metod"]),
    "index-growth-factor": (_with(pgvector_tables=[{"database": "rag", "name": "documents", "indexes": [
                                {"method": "ivfflat", "retrain_growth_factor": 1.0}]}]),
                            ["pgvector_tables rag.documents: indexes[0].retrain_growth_factor must be 0 (never "
                             "re-train) or greater than 1, not 1.0"]),
    "index-min-recall": (_with(pgvector_tables=[{"database": "rag", "name": "documents", "indexes": [
                             {"method": "hnsw", "min_recall": 1.5}]}]),
                         ["indexes[0].min_recall must be in (0, 1], not 1.5"]),
    "index-lists-hnsw": (_with(pgvector_tables=[{"database": "rag", "name": "documents", "indexes": [
                             {"method": "hnsw", "lists": "auto"}]}]),
                         ["indexes[0].lists applies to method ivfflat only"]),
    "index-search-role": (_with(pgvector_tables=[{"database": "rag", "name": "documents", "indexes": [
                              {"search_defaults_roles": ["ghost"]}]}]),
                          ["indexes[0].search_defaults_roles: ghost is not in pgvector_roles"]),
    "growth-factor": (_with(pgvector_ivfflat_retrain_growth_factor=0.5),
                      ["pgvector_ivfflat_retrain_growth_factor must be 0 (never re-train) or greater than 1, not 0.5"]),
    "image-pull-choice": (_with(pgvector_image_pull="sometimes"),
                          ["pgvector_image_pull", "missing, always, never"]),
    "backup-database-unmanaged": (_with(pgvector_backup_databases=["other"]),
                                  ["pgvector_backup_databases: other is not in pgvector_databases"]),
    "backup-retention-partial": (_with(pgvector_backup_retention={"weekly": 0}), None),
    "backup-retention-daily-zero": (_with(pgvector_backup_retention={"daily": 0, "weekly": 4, "monthly": 6}),
                                    ["pgvector_backup_retention.daily must be a whole number of sets, 1 or more, not 0"]),
    "backup-retention-weekly-negative": (_with(pgvector_backup_retention={"weekly": -1}),
                                         ["pgvector_backup_retention.weekly must be a whole number of sets, 0 or more, not -1"]),
    "backup-retention-monthly-fraction": (_with(pgvector_backup_retention={"monthly": 1.5}),
                                          ["pgvector_backup_retention", "monthly"]),
    "backup-retention-unknown-tier": (_with(pgvector_backup_retention={"yearly": 2}),
                                      ["pgvector_backup_retention", "yearly"]),
    "backup-keep-days-negative": (_with(pgvector_backup_keep_days=-1),
                                  ["pgvector_backup_keep_days must be 0 (unused, the default) or more, not -1"]),
    "backup-on-calendar-empty": (_with(pgvector_backup_on_calendar=" "),
                                 ["pgvector_backup_on_calendar must not be empty"]),
}


PREFLIGHT = {"Validating arguments against arg spec", "Gather the hardware facts", "Load the variables",
             "Judge the passwords", "Assert that every password", "Collect invalid variables",
             "Assert that the variables are valid"}
(probe, test_invalid_variables_fail_naming_the_variable, test_probe_ran_only_validation_and_preflight,
 test_secrets_never_printed) = preflight_suite("pgvector", CASES, PREFLIGHT, ("a-good-password-123", "another-good-pw-1", "viewer-pw-9876", "tiny-secret", "changeme-later-2024"))


# --- Rendering -----------------------------------------------------------------------------------

def _render(extra):
    variables = dict(VALID)
    variables.update(extra)
    return render_role_templates(
        "pgvector",
        ("postgresql.conf", "pg_hba.conf", "pg_ident.conf", "aistack-pgvector-backup.sh",
         "aistack-pgvector-restore.sh", "aistack-pgvector-backup.timer", "aistack-pgvector-backup.service"),
        variables,
        computed="{'shm_mb': _pgvector_shm_mb | int, 'login_host': _pgvector_login_host,"
                 " 'extensions': _pgvector_database_extensions}")


def _settings(conf):
    settings = {}
    for line in conf.splitlines():
        m = re.match(r"^([a-z_.]+) = (.*)$", line)
        if m:
            settings[m.group(1)] = m.group(2)
    return settings


@pytest.fixture(scope="module")
def rendered():
    return _render({
        "pgvector_memory_mb": 16384,
        "pgvector_cpus": 8,
        "pgvector_settings": {"work_mem": "64MB", "hnsw.ef_search": 100, "jit": False, "application_name": "it's"},
        "pgvector_bind_address": "10.20.30.40",
        "pgvector_hba_allowed_networks": ["10.20.0.0/16"],
        "pgvector_databases": [{"name": "rag", "owner": "app", "extensions": ["pg_trgm", "vector"]}],
    })


def test_tuning_computed_from_memory_and_cpus(rendered):
    s = _settings(rendered["postgresql.conf"])
    assert s["shared_buffers"] == "'4096MB'"
    assert s["effective_cache_size"] == "'12288MB'"
    assert s["maintenance_work_mem"] == "'2048MB'"
    assert s["autovacuum_work_mem"] == "'512MB'"
    assert s["max_connections"] == "200"
    assert s["max_parallel_maintenance_workers"] == "4"
    assert s["max_parallel_workers"] == "8"
    assert s["max_worker_processes"] == "8"


def test_overrides_merged_and_quoted(rendered):
    s = _settings(rendered["postgresql.conf"])
    assert s["work_mem"] == "'64MB'"
    assert s["hnsw.ef_search"] == "100"
    assert s["jit"] == "off"
    assert s["application_name"] == "'it''s'"


def test_role_owned_settings(rendered):
    s = _settings(rendered["postgresql.conf"])
    assert s["listen_addresses"] == "'*'"
    assert s["port"] == "5432"
    assert s["hba_file"] == "'/etc/postgresql/pg_hba.conf'"
    assert s["ident_file"] == "'/etc/postgresql/pg_ident.conf'"
    assert s["password_encryption"] == "'scram-sha-256'"
    assert rendered["postgresql.conf"].startswith("#\n# Ansible managed")


def test_pg_hba_is_scram_only(rendered):
    rules = [line.split() for line in rendered["pg_hba.conf"].splitlines() if line and not line.startswith("#")]
    assert ["local", "all", "all", "peer", "map=aistack"] in rules
    hosts = [r for r in rules if r[0] == "host"]
    assert {r[3] for r in hosts} == {"127.0.0.1/32", "172.30.42.0/24", "10.20.30.40/32", "10.20.0.0/16"}
    assert {r[4] for r in hosts} == {"scram-sha-256"}
    assert "trust" not in rendered["pg_hba.conf"].replace("no trust anywhere", "")
    assert "aistack    postgres         postgres" in rendered["pg_ident.conf"]


def test_shm_and_extensions(rendered):
    computed = json.loads(rendered["computed.json"])
    assert computed["shm_mb"] == int(2048 * 1.25 + 256)
    assert computed["login_host"] == "10.20.30.40"
    assert computed["extensions"] == [{"database": "rag", "extension": "vector"},
                                      {"database": "rag", "extension": "pg_trgm"}]


def test_backup_scripts(rendered):
    backup = rendered["aistack-pgvector-backup.sh"]
    assert "databases=(rag)" in backup
    assert "pg_dump -h /var/run/postgresql -U \"$superuser\" -Fc" in backup
    # One set per run through the shared rotation program, retention only after success.
    assert 'set_dir=$("$rotate" start "$backup_dir")' in backup
    assert "rotate=/usr/local/sbin/aistack-backup-rotate" in backup
    assert "keep_daily=7\nkeep_weekly=4\nkeep_monthly=6\n" in backup
    assert backup.index('"$rotate" fail') < backup.index('"$rotate" finish')
    restore = rendered["aistack-pgvector-restore.sh"]
    assert "--clean --if-exists --single-transaction --exit-on-error" in restore
    assert '"$rotate" verify "$source"' in restore
    for name in ("aistack-pgvector-backup.sh", "aistack-pgvector-restore.sh"):
        proc = subprocess.run(["bash", "-n"], input=rendered[name], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert "OnCalendar=*-*-* 02:30:00" in rendered["aistack-pgvector-backup.timer"]
    assert "RequiresMountsFor=/var/backups/aistack-pgvector\n" in rendered["aistack-pgvector-backup.service"]


def test_backup_retention_counts():
    """Missing retention keys take the defaults; the deprecated keep_days still sets the daily count."""
    sized = {"pgvector_memory_mb": 4096, "pgvector_cpus": 2}
    backup = _render(dict(sized, pgvector_backup_retention={"weekly": 0}, pgvector_backup_dir="/mnt/storage/rag-data/backups/postgres"))
    assert "keep_daily=7\nkeep_weekly=0\nkeep_monthly=6\n" in backup["aistack-pgvector-backup.sh"]
    assert "RequiresMountsFor=/mnt/storage/rag-data/backups/postgres\n" in backup["aistack-pgvector-backup.service"]
    backup = _render(dict(sized, pgvector_backup_keep_days=14, pgvector_backup_retention={"daily": 3, "weekly": 2, "monthly": 1}))
    assert "keep_daily=14\nkeep_weekly=2\nkeep_monthly=1\n" in backup["aistack-pgvector-backup.sh"]


def test_memory_override_units_size_shm():
    computed = json.loads(_render({"pgvector_memory_mb": 4096, "pgvector_cpus": 2,
                                   "pgvector_settings": {"maintenance_work_mem": "1GB"}})["computed.json"])
    assert computed["shm_mb"] == int(1024 * 1.25 + 256)
    computed = json.loads(_render({"pgvector_memory_mb": 4096, "pgvector_cpus": 2,
                                   "pgvector_settings": {"maintenance_work_mem": 262144}})["computed.json"])
    assert computed["shm_mb"] == int(256 * 1.25 + 256)
