# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""llm_server's chat template option (llm_server_chat_template): the preflight accepts llama-server's
built-in names and a Jinja file on the controller and refuses anything else naming the variable
(real ansible-playbook, check mode, limited to the role's preflight tag, against a minimal GGUF
file written here); the container gets the matching LLAMA_ARG_* variables and mount.
molecule/llm_server checks on the real server (/props, /apply-template) that the template is in effect.
"""
import hashlib
import json
import os
import struct
import tempfile

import pytest

from lib.ansible_run import assert_only_preflight_ran, assert_probe_case, render_role_templates, role_preflight_probe

WORK = tempfile.mkdtemp(prefix="aistack-test-llm-server-")


def _gguf(path, arch="gemma3", context_length=32768):
    """A GGUF v3 header with no tensors: general.architecture and <arch>.context_length."""
    def string(text):
        data = text.encode()
        return struct.pack("<Q", len(data)) + data
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    body += string("general.architecture") + struct.pack("<I", 8) + string(arch)
    body += string(arch + ".context_length") + struct.pack("<II", 4, context_length)
    with open(path, "wb") as handle:
        handle.write(body)
    return hashlib.sha256(body).hexdigest()


MODEL = os.path.join(WORK, "tiny.gguf")
MODEL_SHA256 = _gguf(MODEL)
TEMPLATE = os.path.join(WORK, "chat_template.jinja")
with open(TEMPLATE, "w", encoding="utf-8") as _fh:
    _fh.write("{%- for m in messages -%}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n"
              "{{ m.content }}<end_of_turn>\n{% endfor -%}{%- if add_generation_prompt -%}<start_of_turn>model\n{% endif -%}")

BASE = {
    "llm_server_model_src": MODEL,
    "llm_server_model_sha256": MODEL_SHA256,
    "llm_server_api_key": "unit-test-llm-key-3f9a61c0d2",
    "llm_server_ctx_size": 2048,
    "llm_server_parallel": 1,
    "llm_server_nginx_enabled": False,
}


def _vars(**changes):
    variables = dict(BASE)
    variables.update(changes)
    return variables


CASES = {
    "no-template": (_vars(), None),
    "builtin-gemma": (_vars(llm_server_chat_template="gemma"), None),
    "builtin-llama3": (_vars(llm_server_chat_template="llama3"), None),
    "jinja-file": (_vars(llm_server_chat_template=TEMPLATE), None),
    "unknown-name": (_vars(llm_server_chat_template="gemma4"), [
        "llm_server_chat_template must be a built-in template name of llama-server (", "chatml", "not gemma4"]),
    "relative-path": (_vars(llm_server_chat_template="templates/chat.jinja"), [
        "llm_server_chat_template must be an absolute path to a Jinja template file, not templates/chat.jinja"]),
    "missing-file": (_vars(llm_server_chat_template=os.path.join(WORK, "nope.jinja")), [
        "llm_server_chat_template %s is not a file on the controller" % os.path.join(WORK, "nope.jinja"),
        "Nothing was changed"]),
    "directory": (_vars(llm_server_chat_template=WORK), ["llm_server_chat_template %s is not a file" % WORK]),
}


@pytest.fixture(scope="module")
def probe():
    return role_preflight_probe("llm_server", CASES, "llm_server_preflight")


@pytest.mark.parametrize("case", sorted(CASES))
def test_chat_template_preflight(probe, case):
    results, _ran, _out = probe
    _variables, expect = CASES[case]
    assert_probe_case(results, case, expect)


def test_only_the_preflight_ran(probe):
    _results, ran, _out = probe
    assert_only_preflight_ran(ran, "llm_server", ["Validating arguments", "Gather", "Judge", "Assert", "Collect",
                                                  "Count", "Look at", "Read the model"])


def _computed(**changes):
    files = render_role_templates("llm_server", [], _vars(**changes),
                                  computed="{'env': _llm_server_env, 'volumes': _llm_server_chat_template_volumes,"
                                           " 'hash': _llm_server_config_hash}")
    return json.loads(files["computed.json"])


def test_container_gets_the_template():
    none = _computed()
    assert not [k for k in none["env"] if "CHAT_TEMPLATE" in k or k == "LLAMA_ARG_JINJA"]
    assert none["volumes"] == []
    # A built-in name goes with Jinja off: with Jinja on, llama-server b9603 renders the name itself
    # as the prompt (measured: LLAMA_ARG_CHAT_TEMPLATE=gemma -> /apply-template prompt "gemma").
    gemma = _computed(llm_server_chat_template="gemma")
    assert gemma["env"]["LLAMA_ARG_CHAT_TEMPLATE"] == "gemma"
    assert gemma["env"]["LLAMA_ARG_JINJA"] == "0"
    assert gemma["volumes"] == []
    assert gemma["hash"] == none["hash"]  # the environment change alone recreates the container
    jinja = _computed(llm_server_chat_template=TEMPLATE)
    assert jinja["env"]["LLAMA_ARG_CHAT_TEMPLATE_FILE"] == "/etc/llama/chat_template.jinja"
    assert "LLAMA_ARG_JINJA" not in jinja["env"] and "LLAMA_ARG_CHAT_TEMPLATE" not in jinja["env"]
    assert jinja["volumes"] == ["/etc/aistack/llm_server/chat_template.jinja:/etc/llama/chat_template.jinja:ro"]
    # The file is read only at start: its content is part of the config hash (a new template restarts).
    assert jinja["hash"] != none["hash"]
