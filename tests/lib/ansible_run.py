"""Run one aistack.infra module through real ansible-playbook and return its result.

Integration tests use this instead of importing the module, so that check mode, diff mode,
no_log and argument validation behave exactly as they do for a user.
"""
import json
import os
import subprocess
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(play, fh)
        path = fh.name
    try:
        cmd = [os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local", path]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    finally:
        os.unlink(path)
    try:
        out = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError("ansible-playbook printed no JSON (rc=%s)\nstdout:%s\nstderr:%s"
                             % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])) from exc
    task = out["plays"][0]["tasks"][0]
    result = task["hosts"]["localhost"]
    result.setdefault("failed", False)
    return result
