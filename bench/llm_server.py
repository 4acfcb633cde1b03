#!/usr/bin/env python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""llm_server benchmark: generation tokens/s of the role-deployed server against the same server
started by hand, in the same run, with the same image, model and settings.

    lab/bin/lab.sh prepare llama-server          # the lab image (compiles llama-server once, cached)
    lab/artifacts/llama/build.sh model           # the test model (cached)
    .venv/bin/python bench/llm_server.py [--rounds 5] [--tokens 64]

(a) aistack.infra.llm_server applied to this machine by ansible-playbook (connection local; model
    store, key file and container under names of its own, nginx off), image pulled from the lab
    registry as a role would; (b) the same image started by hand with the Docker SDK: the same
    model file mounted read-only and the same context size, slots and threads as llama-server
    flags. Both answer the same completion requests (temperature 0, fixed prompt, N tokens), taken
    in alternation so that a busy machine slows both alike; tokens/s is llama-server's own
    generation rate (timings.predicted_per_second), with wall-clock tokens/s beside it. Prints the
    medians and the ratio a/b (target >= 0.95 on CPU). Removes everything it started.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import docker
import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("AISTACK_CACHE", "/var/cache/aistack")
MODEL = os.path.join(CACHE, "llama", "models", "gemma3-270m-q4_k_m.gguf")
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
REGISTRY = os.environ.get("BENCH_REGISTRY", "127.0.0.1:5000")
IMAGE = "%s/ggml-org/llama.cpp:server-b9603" % REGISTRY
PREFIX = "aistack-bench-llm"
API_KEY = "bench-llm-key-5b0c2f9e81d4a7"
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(port, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get("http://127.0.0.1:%d/health" % port, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    raise SystemExit("server on port %d not healthy after %d s" % (port, timeout))


def complete(port, tokens):
    start = time.monotonic()
    resp = requests.post(
        "http://127.0.0.1:%d/v1/completions" % port,
        headers={"Authorization": "Bearer " + API_KEY},
        json={"prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "ignore_eos": True, "cache_prompt": False},
        timeout=600,
    )
    wall = time.monotonic() - start
    resp.raise_for_status()
    body = resp.json()
    timings = body.get("timings", {})
    produced = body["usage"]["completion_tokens"]
    return timings.get("predicted_per_second"), produced / wall, produced


def deploy_role(workdir, port, settings):
    """Apply the role to this machine; return the container's name."""
    playbook = os.path.join(workdir, "bench.yml")
    with open(playbook, "w") as handle:
        handle.write("- hosts: localhost\n  gather_facts: false\n  roles:\n    - aistack.infra.llm_server\n")
    extra = {
        "llm_server_image_registry": REGISTRY,
        "llm_server_model_src": MODEL,
        "llm_server_model_sha256": MODEL_SHA256,
        "llm_server_model_alias": "gemma3-270m",
        "llm_server_model_dir": os.path.join(workdir, "models"),
        "llm_server_config_dir": os.path.join(workdir, "config"),
        "llm_server_api_key": API_KEY,
        "llm_server_container_name": PREFIX + "-role",
        "llm_server_network_name": PREFIX,
        "llm_server_port": port,
        "llm_server_nginx_enabled": False,
        "llm_server_ctx_size": settings["ctx"],
        "llm_server_parallel": settings["parallel"],
        "llm_server_threads": settings["threads"],
    }
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
               ANSIBLE_ROLES_PATH=os.path.join(REPO, "roles"))
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=" + sys.executable, "-e", json.dumps(extra), playbook]
    result = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit("the role failed:\n" + result.stdout[-3000:] + result.stderr[-2000:])
    return PREFIX + "-role"


def start_by_hand(client, port, settings):
    """The same image, model and settings, started the way llama.cpp's docs show."""
    name = PREFIX + "-hand"
    client.containers.run(
        IMAGE, name=name, detach=True,
        command=["-m", "/models/model.gguf", "--alias", "gemma3-270m", "--host", "0.0.0.0", "--port", "8080",
                 "-c", str(settings["ctx"]), "-np", str(settings["parallel"]), "-t", str(settings["threads"]),
                 "--api-key", API_KEY],
        volumes={MODEL: {"bind": "/models/model.gguf", "mode": "ro"}},
        ports={"8080/tcp": ("127.0.0.1", port)},
    )
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="completions per server (alternating)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated per completion")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if not os.path.isfile(MODEL):
        raise SystemExit("no model at %s: run lab/artifacts/llama/build.sh model" % MODEL)
    settings = {"ctx": args.ctx, "parallel": args.parallel, "threads": args.threads}
    client = docker.from_env()
    workdir = tempfile.mkdtemp(prefix=PREFIX + "-")
    names = []
    try:
        role_port, hand_port = free_port(), free_port()
        t0 = time.monotonic()
        names.append(deploy_role(workdir, role_port, settings))
        deploy_s = time.monotonic() - t0
        names.append(start_by_hand(client, hand_port, settings))
        wait_healthy(role_port)
        wait_healthy(hand_port)
        complete(role_port, 8)  # warm-up: page the model in
        complete(hand_port, 8)
        rates = {"role": [], "hand": []}
        walls = {"role": [], "hand": []}
        for i in range(args.rounds):
            order = [("role", role_port), ("hand", hand_port)] if i % 2 == 0 else [("hand", hand_port), ("role", role_port)]
            for label, port in order:
                rate, wall, produced = complete(port, args.tokens)
                rates[label].append(rate)
                walls[label].append(wall)
                print("round %d %-4s %6.1f tok/s (server), %6.1f tok/s (wall), %d tokens"
                      % (i + 1, label, rate, wall, produced), flush=True)
        med = {k: statistics.median(v) for k, v in rates.items()}
        wmed = {k: statistics.median(v) for k, v in walls.items()}
        ratio = med["role"] / med["hand"]
        print("settings: ctx %(ctx)d, parallel %(parallel)d, threads %(threads)d" % settings)
        print("role deploy (ansible-playbook, model copy, healthy): %.1f s" % deploy_s)
        print("(a) role-deployed : median %.1f tok/s (wall %.1f)" % (med["role"], wmed["role"]))
        print("(b) started by hand: median %.1f tok/s (wall %.1f)" % (med["hand"], wmed["hand"]))
        print("a/b = %.3f (target >= 0.95)" % ratio)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"settings": settings, "rates": rates, "walls": walls, "ratio": ratio,
                           "deploy_s": deploy_s}, handle, indent=2)
        return 0 if ratio >= 0.95 else 1
    finally:
        for name in [PREFIX + "-role", PREFIX + "-hand"]:
            try:
                client.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        try:
            client.networks.get(PREFIX).remove()
        except docker.errors.NotFound:
            pass
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
