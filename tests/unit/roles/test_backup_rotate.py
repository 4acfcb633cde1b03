# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""aistack-backup-rotate (roles/backup_common/files), the set layout and daily/weekly/monthly
retention shared by the pgvector and milvus backups, run for real with bash in a temporary
directory. The clock is driven through AISTACK_BACKUP_NOW: months of daily runs (with a host down
for some days, two runs on one day, an ISO week that starts in December) end with exactly the sets
the calendar says; a failed run prunes nothing; the tiers share files through hard links, and fall
back to copies where links are refused; bad counts and paths are refused naming the option.
"""
import datetime
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROTATE = os.path.join(REPO, "roles", "backup_common", "files", "aistack-backup-rotate")
TIERS = ("daily", "weekly", "monthly")


def rotate(*args, now=None, stamp=None, env=None, check=True):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AISTACK_BACKUP_")}
    if now is not None:
        full_env["AISTACK_BACKUP_NOW"] = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    if stamp is not None:
        full_env["AISTACK_BACKUP_STAMP"] = stamp
    full_env.update(env or {})
    proc = subprocess.run(["bash", ROTATE] + [str(a) for a in args], env=full_env, capture_output=True,
                          text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def stamp_of(when):
    return when.strftime("%Y%m%dT%H%M%SZ")


def backup(root, when, daily=7, weekly=4, monthly=6, env=None):
    """One successful run as the roles' backup programs make it: start, write, finish."""
    set_dir = rotate("start", root, now=when, env=env).stdout.strip()
    assert set_dir == os.path.join(str(root), "daily", stamp_of(when) + ".partial")
    with open(os.path.join(set_dir, "rag.dump"), "w", encoding="utf-8") as fh:
        fh.write("dump of %s\n" % stamp_of(when))
    return rotate("finish", root, set_dir, "--daily", daily, "--weekly", weekly, "--monthly", monthly, env=env)


def tree(root):
    """{tier: [entries]} of a backup directory."""
    return {tier: sorted(os.listdir(os.path.join(str(root), tier))) for tier in TIERS}


def expected_sets(runs, daily, weekly, monthly):
    """What the calendar says: the newest `daily` runs; of the first run of each ISO week (each
    month), the newest `weekly` (`monthly`)."""
    def firsts(key):
        seen, out = set(), []
        for when in runs:
            if key(when) not in seen:
                seen.add(key(when))
                out.append(when)
        return out
    newest = lambda whens, n: sorted(stamp_of(w) for w in whens)[-n:] if n else []
    return {"daily": newest(runs, daily),
            "weekly": newest(firsts(lambda w: w.isocalendar()[:2]), weekly),
            "monthly": newest(firsts(lambda w: (w.year, w.month)), monthly)}


def test_months_of_runs_keep_what_the_calendar_says(tmp_path):
    # 2025-12-15 .. 2026-03-31 at 02:30 UTC, the host down 2026-01-05..07 (Mon-Wed of ISO week 2:
    # its first set is Thursday's) and 2026-02-14..20, two runs on 2026-03-10. 2025-12-29 (a Monday
    # in December) starts ISO week 2026-W01.
    day = datetime.datetime(2025, 12, 15, 2, 30, tzinfo=datetime.timezone.utc)
    down = {datetime.date(2026, 1, d) for d in (5, 6, 7)} | {datetime.date(2026, 2, d) for d in range(14, 21)}
    runs = []
    while day.date() <= datetime.date(2026, 3, 31):
        if day.date() not in down:
            runs.append(day)
            if day.date() == datetime.date(2026, 3, 10):
                runs.append(day.replace(hour=14))
        day += datetime.timedelta(days=1)
    for when in runs:
        backup(tmp_path, when, daily=7, weekly=4, monthly=6)
    got = tree(tmp_path)
    want = expected_sets(runs, 7, 4, 6)
    assert got == want
    # Spelled out for the record: the calendar's answer.
    assert want["weekly"] == ["20260309T023000Z", "20260316T023000Z", "20260323T023000Z", "20260330T023000Z"]
    assert want["monthly"] == ["20251215T023000Z", "20260101T023000Z", "20260201T023000Z", "20260301T023000Z"]
    assert want["daily"][0] == "20260325T023000Z" and want["daily"][-1] == "20260331T023000Z"


def test_iso_week_across_the_year_and_a_late_first_set(tmp_path):
    runs = [datetime.datetime(2025, 12, d, 2, 30, tzinfo=datetime.timezone.utc) for d in (26, 29, 31)]
    runs += [datetime.datetime(2026, 1, d, 2, 30, tzinfo=datetime.timezone.utc) for d in (1, 8, 9)]
    for when in runs:
        backup(tmp_path, when, daily=10, weekly=10, monthly=10)
    got = tree(tmp_path)
    # 2025-12-29 opens ISO week 2026-W01 (2026-01-01 is in it too); 2026-01-08 is the first set of W02.
    assert got["weekly"] == ["20251226T023000Z", "20251229T023000Z", "20260108T023000Z"]
    assert got["monthly"] == ["20251226T023000Z", "20260101T023000Z"]
    assert got["daily"] == [stamp_of(w) for w in runs]


def test_a_failed_run_prunes_nothing(tmp_path):
    base = datetime.datetime(2026, 6, 1, 2, 30, tzinfo=datetime.timezone.utc)
    for i in range(3):
        backup(tmp_path, base + datetime.timedelta(days=i), daily=2, weekly=1, monthly=1)
    before = tree(tmp_path)
    assert before["daily"] == ["20260602T023000Z", "20260603T023000Z"]
    # Day 4 fails (a dump broke): the set is kept as .failed for inspection, nothing else moves.
    failed = rotate("start", tmp_path, now=base + datetime.timedelta(days=3)).stdout.strip()
    with open(os.path.join(failed, "rag.dump"), "w", encoding="utf-8") as fh:
        fh.write("half a dump")
    proc = rotate("fail", tmp_path, failed)
    assert "nothing pruned" in proc.stderr
    after = tree(tmp_path)
    assert after["daily"] == before["daily"] + ["20260604T023000Z.failed"]
    assert after["weekly"] == before["weekly"] and after["monthly"] == before["monthly"]
    # A run that died without a word leaves its .partial: also untouched by the next success...
    rotate("start", tmp_path, now=base + datetime.timedelta(days=4))
    backup(tmp_path, base + datetime.timedelta(days=5), daily=2, weekly=1, monthly=1)
    assert tree(tmp_path)["daily"] == ["20260603T023000Z", "20260604T023000Z.failed", "20260605T023000Z.partial",
                                       "20260606T023000Z"]
    # ... until both are older than the oldest daily set kept.
    backup(tmp_path, base + datetime.timedelta(days=6), daily=2, weekly=1, monthly=1)
    assert tree(tmp_path)["daily"] == ["20260606T023000Z", "20260607T023000Z"]
    # A failed set is never a restore source.
    assert rotate("latest", tmp_path).stdout.strip().endswith("daily/20260607T023000Z")


def test_tiers_share_files_through_hard_links(tmp_path):
    when = datetime.datetime(2026, 6, 1, 2, 30, tzinfo=datetime.timezone.utc)  # a Monday, first of June
    out = backup(tmp_path, when).stdout
    assert "linked %s/weekly/20260601T023000Z" % tmp_path in out
    stats = [os.stat(os.path.join(str(tmp_path), tier, "20260601T023000Z", "rag.dump")) for tier in TIERS]
    assert len({s.st_ino for s in stats}) == 1 and stats[0].st_nlink == 3
    # The daily set pruned later: the weekly and monthly copies keep the data.
    for i in range(1, 3):
        backup(tmp_path, when + datetime.timedelta(days=i), daily=1)
    assert "20260601T023000Z" not in tree(tmp_path)["daily"]
    path = os.path.join(str(tmp_path), "weekly", "20260601T023000Z", "rag.dump")
    assert open(path, encoding="utf-8").read() == "dump of 20260601T023000Z\n"
    assert os.stat(path).st_nlink == 2
    rotate("verify", os.path.join(str(tmp_path), "monthly", "20260601T023000Z"))


def test_copies_where_hard_links_are_refused(tmp_path):
    # A cp that refuses -al (as across filesystems) in front of the real one.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "cp").write_text('#!/bin/sh\ncase " $* " in *" -al "*) echo "cp: cannot create hard link" >&2; exit 1;; esac\n'
                             'exec /bin/cp "$@"\n')
    (shim / "cp").chmod(0o755)
    root = tmp_path / "backups"
    root.mkdir()
    env = {"PATH": "%s:%s" % (shim, os.environ["PATH"])}
    out = backup(root, datetime.datetime(2026, 6, 1, 2, 30, tzinfo=datetime.timezone.utc), env=env).stdout
    assert "copied %s/weekly/20260601T023000Z (hard links refused)" % root in out
    stats = [os.stat(os.path.join(str(root), tier, "20260601T023000Z", "rag.dump")) for tier in TIERS]
    assert len({s.st_ino for s in stats}) == 3 and all(s.st_nlink == 1 for s in stats)
    rotate("verify", os.path.join(str(root), "weekly", "20260601T023000Z"))


def test_zero_weekly_and_monthly_keep_none(tmp_path):
    base = datetime.datetime(2026, 6, 1, 2, 30, tzinfo=datetime.timezone.utc)
    backup(tmp_path, base)
    assert tree(tmp_path) == {t: ["20260601T023000Z"] for t in TIERS}
    backup(tmp_path, base + datetime.timedelta(days=7), daily=3, weekly=0, monthly=0)
    assert tree(tmp_path) == {"daily": ["20260601T023000Z", "20260608T023000Z"], "weekly": [], "monthly": []}


def test_checksums_list_and_latest(tmp_path):
    base = datetime.datetime(2026, 6, 1, 2, 30, tzinfo=datetime.timezone.utc)
    backup(tmp_path, base)
    backup(tmp_path, base + datetime.timedelta(hours=12))
    listed = rotate("list", tmp_path).stdout.split()
    assert listed == ["daily/20260601T143000Z", "daily/20260601T023000Z", "weekly/20260601T023000Z",
                      "monthly/20260601T023000Z"]
    newest = os.path.join(str(tmp_path), "daily", "20260601T143000Z")
    assert rotate("latest", tmp_path, "rag.dump").stdout.strip() == newest
    proc = rotate("latest", tmp_path, "other.dump", check=False)
    assert proc.returncode == 1 and "no complete set holding other.dump" in proc.stderr
    sums = open(os.path.join(newest, "SHA256SUMS"), encoding="utf-8").read()
    assert sums.endswith("  rag.dump\n") and len(sums.splitlines()) == 1
    with open(os.path.join(newest, "rag.dump"), "a", encoding="utf-8") as fh:
        fh.write("bit rot\n")
    proc = rotate("verify", newest, check=False)
    assert proc.returncode == 1 and "does not match its SHA256SUMS" in proc.stderr


@pytest.mark.parametrize("counts, message", [
    (["--daily", "0", "--weekly", "4", "--monthly", "6"], "--daily must be 1 or more, not 0"),
    (["--daily", "7", "--weekly", "-1", "--monthly", "6"], "--weekly must be a whole number, not '-1'"),
    (["--daily", "7", "--weekly", "4", "--monthly", "1.5"], "--monthly must be a whole number, not '1.5'"),
    (["--daily", "7", "--weekly", "4"], "finish needs --daily, --weekly and --monthly"),
])
def test_bad_counts_are_refused_and_change_nothing(tmp_path, counts, message):
    set_dir = rotate("start", tmp_path, stamp="20260601T023000Z").stdout.strip()
    proc = rotate("finish", tmp_path, set_dir, *counts, check=False)
    assert proc.returncode != 0 and message in proc.stderr
    assert tree(tmp_path) == {"daily": ["20260601T023000Z.partial"], "weekly": [], "monthly": []}


def test_bad_sets_and_clocks_are_refused(tmp_path):
    backup(tmp_path, datetime.datetime(2026, 6, 2, 2, 30, tzinfo=datetime.timezone.utc))
    complete = os.path.join(str(tmp_path), "daily", "20260602T023000Z")
    proc = rotate("finish", tmp_path, complete, "--daily", 1, "--weekly", 0, "--monthly", 0, check=False)
    assert proc.returncode == 1 and "is not a set in progress" in proc.stderr
    proc = rotate("fail", tmp_path, str(tmp_path / "elsewhere.partial"), check=False)
    assert proc.returncode == 1
    proc = rotate("start", tmp_path, stamp="20260602T023000Z", check=False)
    assert proc.returncode == 1 and "exists already" in proc.stderr
    proc = rotate("start", tmp_path, stamp="20260601T023000Z", check=False)
    assert proc.returncode == 1 and "is the clock right?" in proc.stderr
    proc = rotate("start", tmp_path, stamp="2026-06-03", check=False)
    assert proc.returncode == 1 and "AISTACK_BACKUP_STAMP must be YYYYMMDDTHHMMSSZ" in proc.stderr
    proc = rotate("start", tmp_path / "missing", check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    assert tree(tmp_path)["daily"] == ["20260602T023000Z"]
