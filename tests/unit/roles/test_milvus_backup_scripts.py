# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The milvus role's backup and restore programs, rendered from the role's templates and run for
real with bash, against a test double of the `docker` command (a Python script first on PATH that
keeps the containers' running state in a JSON file, maps each container's mount points to
directories of the test and logs every call), with the real aistack-backup-rotate, tar and
sha256sum. What is checked here is the programs' own logic: the order of stop / snapshot / copy /
start, Milvus started again whatever fails, the set and its retention only after success, the
restore swapping the data and starting the stack in order, and the refusals. molecule `split`
runs both programs against the real Milvus 2.3.5 and etcd.
"""
import json
import os
import subprocess
import tarfile

import pytest
from lib.ansible_run import render_role_templates

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROTATE = os.path.join(REPO, "roles", "backup_common", "files", "aistack-backup-rotate")
SECRETS = {"milvus_minio_access_key": "aistack-milvus", "milvus_minio_secret_key": "S3cr3t-minio-key-42",
           "milvus_root_password": "R00t-password-for-milvus"}
SCRIPTS = ("aistack-milvus-backup.sh", "aistack-milvus-restore.sh", "aistack-milvus-backup.service",
           "aistack-milvus-backup.timer")

# The test double: `docker inspect -f FORMAT NAME`, `stop`, `start`, `exec ... etcdctl snapshot save`,
# `run ... --entrypoint etcdutl|etcdctl ... snapshot restore`. The state file maps each container to
# {running, image, mounts: {destination: host directory}}; "fail" names steps that must fail.
FAKE_DOCKER = r'''#!/usr/bin/env python3
import json, os, re, shutil, sys
state_path = os.environ["FAKE_DOCKER_STATE"]
state = json.load(open(state_path))
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
def save():
    json.dump(state, open(state_path, "w"))
def host_path(name, path):
    for dest, src in state["containers"][name]["mounts"].items():
        if path == dest or path.startswith(dest + "/"):
            return src + path[len(dest):]
    sys.exit("no mount for " + path)
cmd = args[0]
if cmd == "inspect":
    fmt, name = args[2], args[3]
    c = state["containers"].get(name)
    if c is None:
        sys.exit("Error: No such object: " + name)
    if "Mounts" in fmt:
        print(c["mounts"].get(re.search(r'Destination "([^"]+)"', fmt).group(1), ""))
    elif ".State.Running" in fmt:
        print("true" if c["running"] else "false")
    elif "Health" in fmt:
        print("healthy" if c["running"] and name not in state.get("unhealthy", []) else
              ("unhealthy" if c["running"] else "exited"))
    elif ".Config.Image" in fmt:
        print(c["image"])
elif cmd in ("stop", "start"):
    name = args[-1]
    if "%s %s" % (cmd, name) in state.get("fail", []):
        sys.exit("Error response from daemon: cannot %s %s" % (cmd, name))
    state["containers"][name]["running"] = cmd == "start"
    save()
elif cmd == "exec":
    name = [a for a in args[1:] if not a.startswith("-") and "=" not in a][0]
    assert state["containers"][name]["running"], name + " is not running"
    assert not any(c["running"] for n, c in state["containers"].items() if n != name), "snapshot taken while Milvus runs"
    if "snapshot" in state.get("fail", []):
        sys.exit("Error: context deadline exceeded")
    src = host_path(name, "/etcd/member/data")
    shutil.copy(src, host_path(name, args[-1]))
elif cmd == "run":
    entry = args[args.index("--entrypoint") + 1]
    if entry == "etcdutl":
        sys.exit(127)
    volumes_from = args[args.index("--volumes-from") + 1]
    bind = args[args.index("-v") + 1].split(":")
    snapshot = args[args.index("restore") + 1].replace("/backup", bind[0], 1)
    data_dir = host_path(volumes_from, args[args.index("--data-dir") + 1])
    assert not os.path.exists(data_dir)
    os.makedirs(data_dir + "/member")
    shutil.copy(snapshot, data_dir + "/member/data")
    with open(state["restore_args"], "w") as fh:
        fh.write(" ".join(args))
else:
    sys.exit("unexpected docker " + cmd)
'''


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The programs for local and minio object storage, with the rotation program of this checkout."""
    out = {}
    for mode in ("local", "minio", "s3"):
        variables = dict(SECRETS, milvus_object_storage=mode, milvus_health_retries=2, milvus_health_delay=2,
                         _milvus_backup_rotate=ROTATE, milvus_backup_dir="/srv/backups/milvus")
        if mode == "s3":
            variables.update(milvus_s3_endpoint="s3.internal:8333", milvus_s3_bucket="milvus-segments",
                             milvus_s3_access_key="aistack-s3-user", milvus_s3_secret_key="S3-secret-key-for-milvus-77")
        out[mode] = render_role_templates("milvus", SCRIPTS, variables)
    return out


class Host:
    """Data directories, backup directory, state and log of the test double, and the programs."""

    def __init__(self, tmp_path, rendered, mode="local"):
        self.root = tmp_path
        self.backups = tmp_path / "backups"
        self.backups.mkdir()
        self.dirs = {name: tmp_path / "volumes" / name for name in ("milvus", "etcd", "minio")}
        for d in self.dirs.values():
            d.mkdir(parents=True)
        self.write_data("v1")
        containers = {
            "aistack-milvus": {"running": True, "image": "lab/milvus:v2.3.5", "mounts": {"/var/lib/milvus": str(self.dirs["milvus"])}},
            "aistack-milvus-etcd": {"running": True, "image": "lab/etcd:v3.5.5", "mounts": {"/etcd": str(self.dirs["etcd"])}},
        }
        if mode == "minio":
            containers["aistack-milvus-minio"] = {"running": True, "image": "minio/minio",
                                                  "mounts": {"/minio_data": str(self.dirs["minio"])}}
        self.state = tmp_path / "docker.json"
        self.log = tmp_path / "docker.log"
        self.set_state(containers=containers, restore_args=str(tmp_path / "restore-args"))
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "docker").write_text(FAKE_DOCKER)
        (bin_dir / "docker").chmod(0o755)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AISTACK_BACKUP_")}
        self.env.update(PATH="%s:%s" % (bin_dir, os.environ["PATH"]), FAKE_DOCKER_STATE=str(self.state),
                        FAKE_DOCKER_LOG=str(self.log))
        self.programs = {}
        for name in ("aistack-milvus-backup.sh", "aistack-milvus-restore.sh"):
            text = rendered[mode][name].replace("backup_dir=/srv/backups/milvus", "backup_dir=%s" % self.backups)
            path = tmp_path / name
            path.write_text(text)
            self.programs[name.split("-")[2].split(".")[0]] = str(path)

    def write_data(self, version):
        (self.dirs["etcd"] / "member").mkdir(exist_ok=True)
        (self.dirs["etcd"] / "member" / "data").write_text("etcd " + version)
        (self.dirs["milvus"] / "rdb_data").mkdir(exist_ok=True)
        (self.dirs["milvus"] / "rdb_data" / "000001.log").write_text("rocksmq " + version)
        (self.dirs["minio"] / "milvus-bucket").mkdir(exist_ok=True)
        (self.dirs["minio"] / "milvus-bucket" / "segment").write_text("segment " + version)

    def read_data(self):
        return ((self.dirs["etcd"] / "member" / "data").read_text(),
                (self.dirs["milvus"] / "rdb_data" / "000001.log").read_text(),
                (self.dirs["minio"] / "milvus-bucket" / "segment").read_text())

    def set_state(self, **changes):
        state = json.loads(self.state.read_text()) if self.state.exists() else {}
        state.update(changes)
        self.state.write_text(json.dumps(state))

    def running(self):
        return {n: c["running"] for n, c in json.loads(self.state.read_text())["containers"].items()}

    def calls(self):
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.write_text("")
        return [line for line in lines if not line.startswith("inspect")]

    def run(self, program, *args, now="2026-06-01 03:30:00 UTC"):
        env = dict(self.env, AISTACK_BACKUP_NOW=now)
        return subprocess.run(["bash", self.programs[program]] + list(args), env=env, capture_output=True, text=True,
                              timeout=120)

    def sets(self):
        return {tier: sorted(os.listdir(self.backups / tier)) for tier in ("daily", "weekly", "monthly")}


def test_rendered_programs(rendered):
    for mode, files in rendered.items():
        for name in ("aistack-milvus-backup.sh", "aistack-milvus-restore.sh"):
            proc = subprocess.run(["bash", "-n"], input=files[name], capture_output=True, text=True)
            assert proc.returncode == 0, (mode, name, proc.stderr)
        assert "RequiresMountsFor=/srv/backups/milvus\n" in files["aistack-milvus-backup.service"]
        assert "OnCalendar=*-*-* 03:30:00\n" in files["aistack-milvus-backup.timer"]
        backup = files["aistack-milvus-backup.sh"]
        assert "keep_daily=7\nkeep_weekly=4\nkeep_monthly=6\n" in backup
        assert ("minio=aistack-milvus-minio\n" in backup) == (mode == "minio")
        assert ("s3_bucket=milvus-segments" in backup) == (mode == "s3")
        assert ("roll the bucket milvus-segments back" in files["aistack-milvus-restore.sh"]) == (mode == "s3")
        for secret in ("S3cr3t-minio-key-42", "R00t-password-for-milvus", "S3-secret-key-for-milvus-77", "aistack-s3-user"):
            assert secret not in backup and secret not in files["aistack-milvus-restore.sh"]


@pytest.mark.parametrize("mode", ["local", "minio"])
def test_backup_then_restore(tmp_path, rendered, mode):
    host = Host(tmp_path, rendered, mode)
    proc = host.run("backup")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = host.calls()
    # Milvus stopped before MinIO, the snapshot taken with both stopped, started again in reverse order.
    want = ["stop -t 60 aistack-milvus"] + (["stop aistack-milvus-minio"] if mode == "minio" else []) + \
           ["exec -e ETCDCTL_API=3 aistack-milvus-etcd etcdctl --endpoints=http://127.0.0.1:2379 snapshot save "
            "/etcd/.aistack-backup-snapshot.db"] + \
           (["start aistack-milvus-minio"] if mode == "minio" else []) + ["start aistack-milvus"]
    assert calls == want
    assert all(host.running().values())
    stamp = "20260601T033000Z"
    assert host.sets() == {"daily": [stamp], "weekly": [stamp], "monthly": [stamp]}
    set_dir = host.backups / "daily" / stamp
    files = sorted(os.listdir(set_dir))
    assert files == sorted(["MANIFEST", "SHA256SUMS", "etcd.snapshot.db", "milvus-data.tar"]
                           + (["minio-data.tar"] if mode == "minio" else []))
    assert (set_dir / "etcd.snapshot.db").read_text() == "etcd v1"
    assert not (host.dirs["etcd"] / ".aistack-backup-snapshot.db").exists()
    with tarfile.open(set_dir / "milvus-data.tar") as tar:
        assert "./rdb_data/000001.log" in tar.getnames()
    manifest = dict(line.split("=", 1) for line in (set_dir / "MANIFEST").read_text().splitlines())
    assert manifest["object_storage"] == mode and manifest["etcd_image"] == "lab/etcd:v3.5.5"
    assert "Milvus was stopped for" in proc.stdout

    # The data changes, then the set is restored: everything as at the backup, the stack running.
    host.write_data("v2")
    proc = host.run("restore", str(set_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = host.calls()
    minio = ["aistack-milvus-minio"] if mode == "minio" else []
    stops = ["stop -t 60 aistack-milvus"] + ["stop " + c for c in minio] + ["stop aistack-milvus-etcd"]
    starts = ["start " + c for c in ["aistack-milvus-etcd"] + minio + ["aistack-milvus"]]
    assert calls[0] == "run --rm --network none --entrypoint etcdutl lab/etcd:v3.5.5 version"
    assert calls[1:1 + len(stops)] == stops
    assert calls[1 + len(stops)].startswith("run --rm --network none --volumes-from aistack-milvus-etcd -v %s:/backup:ro" % set_dir)
    assert calls[2 + len(stops):] == starts
    restore_args = (tmp_path / "restore-args").read_text()
    assert "--entrypoint etcdctl" in restore_args  # the image has no etcdutl (etcd before 3.5)
    assert "--name milvus-etcd --initial-cluster milvus-etcd=http://localhost:2380" in restore_args
    assert host.read_data() == ("etcd v1", "rocksmq v1", "segment v1" if mode == "minio" else "segment v2")
    assert all(host.running().values())
    for d in host.dirs.values():
        assert [n for n in os.listdir(d) if n.startswith(".aistack")] == []


def test_a_failed_snapshot_starts_milvus_again_and_prunes_nothing(tmp_path, rendered):
    host = Host(tmp_path, rendered)
    assert host.run("backup", now="2026-06-01 03:30:00 UTC").returncode == 0
    host.set_state(fail=["snapshot"])
    host.calls()
    proc = host.run("backup", now="2026-06-02 03:30:00 UTC")
    assert proc.returncode == 1 and "the copy failed" in proc.stderr
    assert host.calls() == ["stop -t 60 aistack-milvus", "exec -e ETCDCTL_API=3 aistack-milvus-etcd etcdctl "
                            "--endpoints=http://127.0.0.1:2379 snapshot save /etcd/.aistack-backup-snapshot.db",
                            "start aistack-milvus"]
    assert all(host.running().values())
    assert host.sets() == {"daily": ["20260601T033000Z", "20260602T033000Z.failed"],
                           "weekly": ["20260601T033000Z"], "monthly": ["20260601T033000Z"]}


def test_milvus_not_healthy_after_the_copy_fails_the_run(tmp_path, rendered):
    host = Host(tmp_path, rendered)
    host.set_state(unhealthy=["aistack-milvus"])
    proc = host.run("backup")
    assert proc.returncode == 1
    assert "aistack-milvus is unhealthy after 4 s" in proc.stderr
    assert "did not come back healthy" in proc.stderr
    assert host.sets()["daily"] == ["20260601T033000Z.failed"]


def test_a_stopped_milvus_stays_stopped(tmp_path, rendered):
    host = Host(tmp_path, rendered)
    state = json.loads(host.state.read_text())
    state["containers"]["aistack-milvus"]["running"] = False
    host.state.write_text(json.dumps(state))
    proc = host.run("backup")
    assert proc.returncode == 0, proc.stderr
    assert [c for c in host.calls() if c.startswith(("stop", "start"))] == []
    assert host.running()["aistack-milvus"] is False


def test_restore_refusals_change_nothing(tmp_path, rendered):
    host = Host(tmp_path, rendered)
    assert host.run("backup").returncode == 0
    set_dir = host.backups / "daily" / "20260601T033000Z"
    host.write_data("v2")
    host.calls()
    # A set of another object storage.
    manifest = (set_dir / "MANIFEST").read_text()
    (set_dir / "MANIFEST").write_text(manifest.replace("object_storage=local", "object_storage=minio"))
    subprocess.run(["bash", "-c", "cd %s && sha256sum MANIFEST etcd.snapshot.db milvus-data.tar > SHA256SUMS" % set_dir],
                   check=True)
    proc = host.run("restore", str(set_dir))
    assert proc.returncode == 1 and "made with object storage 'minio', this Milvus uses 'local'" in proc.stderr
    # A damaged set.
    (set_dir / "MANIFEST").write_text(manifest)
    proc = host.run("restore", str(set_dir))
    assert proc.returncode == 1 and "does not match its SHA256SUMS" in proc.stderr
    assert host.calls() == [] and host.read_data()[:2] == ("etcd v2", "rocksmq v2") and all(host.running().values())


def test_restore_failing_before_the_swap_starts_the_stack_again(tmp_path, rendered):
    host = Host(tmp_path, rendered)
    assert host.run("backup").returncode == 0
    set_dir = host.backups / "daily" / "20260601T033000Z"
    host.write_data("v2")
    host.set_state(fail=["stop aistack-milvus-etcd"])
    host.calls()
    proc = host.run("restore", str(set_dir))
    assert proc.returncode == 1 and "before changing any data" in proc.stderr
    assert all(host.running().values()) and host.read_data()[:2] == ("etcd v2", "rocksmq v2")


def test_restore_failing_after_the_swap_keeps_the_old_data_aside(tmp_path, rendered):
    host = Host(tmp_path, rendered)
    assert host.run("backup").returncode == 0
    set_dir = host.backups / "daily" / "20260601T033000Z"
    host.write_data("v2")
    host.set_state(unhealthy=["aistack-milvus"])
    proc = host.run("restore", str(set_dir))
    assert proc.returncode == 1 and "the data it replaced is kept in" in proc.stderr
    aside = [n for n in os.listdir(host.dirs["milvus"]) if n.startswith(".aistack-before-restore-")]
    assert len(aside) == 1
    assert (host.dirs["milvus"] / aside[0] / "rdb_data" / "000001.log").read_text() == "rocksmq v2"
    assert host.read_data()[:2] == ("etcd v1", "rocksmq v1")
