# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docker role's DOCKER-USER rules (docker_firewall_rules) render as iptables-restore input
that this machine's iptables accepts (`iptables-restore --test`, nothing committed), with the
allowed sources before the drop of each published port. molecule `docker` loads the same file
into a lab host's kernel and sends real connections through it.
"""
import os
import shutil
import subprocess
import tempfile

import pytest
from lib.ansible_run import render_role_templates

RULES = [
    {"port": 5432, "sources": ["10.20.0.0/24", "10.30.0.7"], "comment": 'postgres "primary"'},
    {"port": "9000:9001", "proto": "udp", "sources": ["192.168.1.0/24"]},
]


def _render(**extra):
    variables = {"docker_firewall_rules": RULES}
    variables.update(extra)
    return render_role_templates("docker", ("docker-firewall.rules",), variables)["docker-firewall.rules"]


@pytest.fixture(scope="module")
def rendered():
    """{action: rendered rules file}: one ansible-playbook run per action."""
    return {action: _render(docker_firewall_action=action) for action in ("DROP", "REJECT")}


def _rules(text):
    return [line for line in text.splitlines() if line.startswith("-A ")]


def test_sources_pass_before_the_port_is_dropped(rendered):
    rules = _rules(rendered["DROP"])
    assert rules[0] == "-A AISTACK-DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    match = "-p tcp -m conntrack --ctstate DNAT --ctproto tcp --ctorigdstport 5432 --ctdir ORIGINAL"
    assert rules[1].startswith("-A AISTACK-DOCKER-USER -s 10.20.0.0/24 " + match)
    assert rules[1].endswith("-j RETURN")
    assert rules[2].startswith("-A AISTACK-DOCKER-USER -s 10.30.0.7/32 " + match)
    # the comment's quotes are dropped, not passed to iptables-restore
    assert rules[3] == '-A AISTACK-DOCKER-USER %s -m comment --comment "aistack tcp/5432 postgres primary" -j DROP' % match
    assert "--ctorigdstport 9000:9001" in rules[4] and rules[4].endswith("-j RETURN")
    assert rules[5].endswith("-j DROP") and "-p udp" in rules[5]
    assert rules[-1] == "-A AISTACK-DOCKER-USER -j RETURN"
    assert len(rules) == 7


def test_reject_per_protocol(rendered):
    rules = _rules(rendered["REJECT"])
    assert rules[3].endswith("-j REJECT --reject-with tcp-reset")
    assert rules[5].endswith("-j REJECT --reject-with icmp-port-unreachable")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables-restore"), reason="needs root and iptables")
@pytest.mark.parametrize("action", ["DROP", "REJECT"])
def test_iptables_restore_accepts_it(rendered, action):
    with tempfile.NamedTemporaryFile("w", suffix=".rules", delete=False) as fh:
        fh.write(rendered[action])
    try:
        proc = subprocess.run(["iptables-restore", "--test", "--noflush", fh.name], capture_output=True, text=True,
                              check=False)
    finally:
        os.unlink(fh.name)
    assert proc.returncode == 0, proc.stderr
