"""Run aistack.infra modules, roles and plays through real ansible-playbook on localhost.

Tests use this instead of importing the code, so that check mode, diff mode, no_log and argument
validation behave exactly as they do for a user.
"""
import json
import os
import subprocess
import tempfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ansible_env(extra_env=None):
    """The environment of every test run: this checkout's config and collection, JSON output."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": os.path.join(REPO, ".venv", "bin", "python"),
        "ANSIBLE_NOCOLOR": "1",
    })
    env.update(extra_env or {})
    return env


def run_playbook(play, *args, extra_env=None, timeout=600):
    """Run ``play`` (a list of plays) on localhost with the extra command-line ``args``; return
    the finished ``subprocess.CompletedProcess`` (stdout is the json callback's output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(play, fh)
        path = fh.name
    try:
        return subprocess.run(
            [os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local"]
            + list(args) + [path],
            env=ansible_env(extra_env), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    finally:
        os.unlink(path)


def render_role_templates(role, templates, variables, computed=None, mode="0644"):
    """Render ``roles/<role>/templates/<name>.j2`` for each name of ``templates`` with the role's
    defaults and vars, ``variables`` given as extra vars (above both). With ``computed`` (a Jinja
    expression, e.g. a dict of the role's internal variables), also writes its JSON as
    ``computed.json``. Returns {file name: content}.
    """
    role_dir = os.path.join(REPO, "roles", role)
    with tempfile.TemporaryDirectory(prefix=role + "-render-") as out:
        tasks = [{"name": "render " + name, "ansible.builtin.template": {
            "src": os.path.join(role_dir, "templates", name + ".j2"), "dest": os.path.join(out, name), "mode": mode}}
            for name in templates]
        if computed is not None:
            tasks.append({"name": "computed", "ansible.builtin.copy": {
                "dest": os.path.join(out, "computed.json"), "mode": "0644", "content": "{{ %s | to_json }}" % computed}})
        play = [{
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [os.path.join(role_dir, "defaults", "main.yml"), os.path.join(role_dir, "vars", "main.yml")],
            "tasks": tasks,
        }]
        vars_path = os.path.join(out, ".extra-vars.json")
        with open(vars_path, "w", encoding="utf-8") as fh:
            json.dump(variables, fh)
        proc = run_playbook(play, "-e", "@" + vars_path)
        assert proc.returncode == 0, proc.stdout[-3000:]
        os.unlink(vars_path)
        files = {}
        for name in os.listdir(out):
            with open(os.path.join(out, name), encoding="utf-8") as fh:
                files[name] = fh.read()
    return files


def role_preflight_probe(role, cases, tag):
    """Include ``aistack.infra.<role>`` once per case of ``cases`` ({name: (variables, expect)}) in
    a block whose rescue records the failure message, in check mode and limited to ``tag`` (the
    role's validation and preflight tasks), so nothing past preflight can touch this machine.

    Returns (results {case: 'PASSED' or the failure message}, names of every task that ran, stdout).
    """
    tasks = []
    for case, (variables, _expect) in cases.items():
        tasks.append({
            "name": case,
            "block": [
                {"name": "include " + case, "ansible.builtin.include_role": {"name": "aistack.infra." + role},
                 "vars": variables, "tags": [tag]},
                {"name": "record pass " + case, "tags": [tag], "ansible.builtin.set_fact": {
                    "probe_results": "{{ probe_results | combine({'%s': 'PASSED'}) }}" % case}},
            ],
            "rescue": [
                {"name": "record failure " + case, "tags": [tag], "ansible.builtin.set_fact": {
                    "probe_results": "{{ probe_results | combine({'%s': ansible_failed_result.msg"
                                     " | default('failed without msg')}) }}" % case}},
            ],
        })
    tasks.append({"name": "emit", "tags": [tag], "ansible.builtin.debug": {"var": "probe_results"}})
    play = [{"hosts": "localhost", "gather_facts": False, "vars": {"probe_results": {}}, "tasks": tasks}]
    proc = run_playbook(play, "--check", "--tags", tag)
    try:
        ran = json.loads(proc.stdout)["plays"][0]["tasks"]
    except (ValueError, KeyError, IndexError):
        ran = []
    emitted = [t for t in ran if t["task"]["name"] == "emit"]
    assert emitted, "the probe play did not finish (rc=%s): %s" % (proc.returncode, proc.stderr[-2000:])
    return emitted[0]["hosts"]["localhost"]["probe_results"], [t["task"]["name"] for t in ran], proc.stdout


def assert_probe_case(results, case, expect):
    """One case of role_preflight_probe: ``expect`` None means the variables must pass, otherwise
    the failure message must contain every string of ``expect``."""
    msg = results[case]
    if expect is None:
        assert msg == "PASSED", "case %s failed: %s" % (case, msg)
    else:
        assert msg != "PASSED", "the role accepted case %s" % case
        for needle in expect:
            assert needle in msg, "%r not in %r" % (needle, msg)


def assert_only_preflight_ran(ran, role, preflight):
    """Every task of ``aistack.infra.<role>`` that ran is one of the ``preflight`` task names (by
    substring), so a wrongly accepted case cannot have changed anything."""
    role_tasks = [n for n in ran if n.startswith("aistack.infra.%s : " % role)]
    assert role_tasks, "no task of the role ran"
    assert all(any(p in n for p in preflight) for n in role_tasks), sorted(set(role_tasks))


def run_module(module, args, check=False, diff=False, extra_env=None, timeout=600):
    """Run ``aistack.infra.<module>`` (or a full FQCN) on localhost; return the result dict.

    The result always contains ``failed`` (bool) and ``msg`` where the module set one.
    """
    name = module if "." in module else "aistack.infra." + module
    play = [{
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": "module under test", name: args, "register": "r", "ignore_errors": True},
                  {"name": "emit", "ansible.builtin.debug": {"var": "r"}}],
    }]
    args = (["--check"] if check else []) + (["--diff"] if diff else [])
    proc = run_playbook(play, *args, extra_env=extra_env, timeout=timeout)
    try:
        out = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError("ansible-playbook printed no JSON (rc=%s)\nstdout:%s\nstderr:%s"
                             % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])) from exc
    task = out["plays"][0]["tasks"][0]
    result = task["hosts"]["localhost"]
    result.setdefault("failed", False)
    return result


def preflight_suite(role, cases, preflight, secrets=(), tag=None):
    """The bad-input tests every role's unit tests share, for ``role_preflight_probe``'s ``cases``:

    - each case fails naming its variable (or passes when its expectation is None);
    - only the ``preflight`` tasks of the role ran (so a wrongly accepted case changed nothing);
    - none of ``secrets`` (strings searched for in the whole output) was printed.

    Returns (fixture, test, test, test); a test module binds them to its own names, e.g.
    ``probe, test_invalid_variables, test_only_preflight_ran, test_secrets_never_printed = preflight_suite(...)``,
    so that pytest collects them there.
    """
    tag = tag or role + "_preflight"

    @pytest.fixture(scope="module")
    def probe():
        return role_preflight_probe(role, cases, tag)

    @pytest.mark.parametrize("case", sorted(cases))
    def test_invalid_variables_fail_naming_the_variable(probe, case):
        results, _ran, _raw = probe
        assert_probe_case(results, case, cases[case][1])

    def test_probe_ran_only_validation_and_preflight(probe):
        """Nothing past preflight ran, so a failing case cannot have changed anything."""
        _results, ran, _raw = probe
        assert_only_preflight_ran(ran, role, preflight)

    def test_secrets_never_printed(probe):
        _results, _ran, raw = probe
        for secret in secrets:
            assert secret not in raw

    return probe, test_invalid_variables_fail_naming_the_variable, test_probe_ran_only_validation_and_preflight, \
        test_secrets_never_printed


def prepare_lab_engine():
    """Start the Docker engine and build the lab's base image with the scripts `make test` uses for
    molecule, for tests that run roles against this machine's engine."""
    subprocess.run([os.path.join(REPO, "lab", "bin", "engine.sh")], check=True, capture_output=True)
    proc = subprocess.run([os.path.join(REPO, "lab", "bin", "images.sh"), "host"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
