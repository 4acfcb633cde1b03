# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base role's sshd drop-in for each OpenSSH version the collection supports.

The key exchanges depend on the installed OpenSSH (vars/main.yml _base_ssh_kex_by_version), read
from the openssh-server package version. Only Debian 12 (OpenSSH 9.2) runs here: molecule/base
checks that one with sshd -T and ssh-audit. Ubuntu 22.04 (8.9), Ubuntu 24.04 (9.6) and Debian 13
(10.0) are rendered only, against the algorithms each release's OpenSSH added (release notes: 8.5
sntrup761x25519-sha512@openssh.com; 9.9 mlkem768x25519-sha256 and sntrup761x25519-sha512).
"""
import pytest
from lib.ansible_run import render_role_templates

PQ_85 = ["sntrup761x25519-sha512@openssh.com"]
PQ_99 = ["mlkem768x25519-sha256", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com"]

# openssh-server package version -> (version the file names, KexAlgorithms)
VERSIONS = {
    "ubuntu-22.04": ("1:8.9p1-3ubuntu0.10", "8.9", PQ_85),
    "debian-12": ("1:9.2p1-2+deb12u10", "9.2", PQ_85),
    "ubuntu-24.04": ("1:9.6p1-3ubuntu13.5", "9.6", PQ_85),
    "debian-13": ("1:10.0p1-7", "10.0", PQ_99),
    # check mode on a fresh host: openssh-server not installed yet -> the oldest supported
    "not-installed": ("", "8.9", PQ_85),
    # older than every supported release: classic key exchanges only
    "openssh-8.4": ("1:8.4p1-5+deb11u3", "8.4", None),
}


def _render(package_version, **variables):
    variables.setdefault("base_admin_users", [])
    variables["__base_openssh_package"] = {"stdout": package_version}
    files = render_role_templates("base", ["sshd_hardening.conf"], variables)
    lines = files["sshd_hardening.conf"].splitlines()
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines if line and not line.startswith("#")}, lines


@pytest.mark.parametrize("release", sorted(VERSIONS))
def test_key_exchanges_follow_the_openssh_version(release):
    package, version, kex = VERSIONS[release]
    keywords, lines = _render(package)
    assert "# Chosen for OpenSSH %s." % version in lines
    if kex is None:
        assert keywords["KexAlgorithms"].split(",")[0] == "curve25519-sha256"
    else:
        assert keywords["KexAlgorithms"].split(",") == kex
    # Never ECDSA, never ssh-rsa (SHA-1) or SHA-1 MACs, whatever the version.
    assert [line for line in lines if line.startswith("HostKey ")] == [
        "HostKey /etc/ssh/ssh_host_ed25519_key", "HostKey /etc/ssh/ssh_host_rsa_key"]
    assert keywords["HostKeyAlgorithms"] == "ssh-ed25519,rsa-sha2-512,rsa-sha2-256"
    assert "ecdsa" not in "\n".join(lines) and "sha1" not in keywords["MACs"]
    assert all(mac.endswith("-etm@openssh.com") for mac in keywords["MACs"].split(","))


def test_explicit_key_exchanges_win_over_the_version_default():
    keywords, lines = _render("1:9.2p1-2+deb12u10", base_ssh_kex_algorithms=[
        "sntrup761x25519-sha512@openssh.com", "curve25519-sha256"])
    assert keywords["KexAlgorithms"] == "sntrup761x25519-sha512@openssh.com,curve25519-sha256"
    assert "# Chosen for OpenSSH 9.2 (base_ssh_kex_algorithms)." in lines


def test_ed25519_only():
    keywords, lines = _render("1:9.6p1-3ubuntu13.5", base_ssh_host_key_types=["ed25519"])
    assert [line for line in lines if line.startswith("HostKey ")] == ["HostKey /etc/ssh/ssh_host_ed25519_key"]
    assert keywords["HostKeyAlgorithms"] == "ssh-ed25519"
