# aistack.infra: the README's commands. Every target installs what it needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_ROLES_PATH := $(CURDIR)/roles
export ANSIBLE_FORCE_COLOR := 0
# Molecule scenarios run by `make test`, MOLECULE_JOBS at a time (tools/molecule.sh), the
# longest first so that the two queues end together.
MOLECULE_SCENARIOS ?= logpipeline registry split bluegreen pgvector milvus monitoring llm_server nfs docker nginx mariadb redis base gpu
MOLECULE_JOBS ?= 2
export MOLECULE_JOBS
export MOLECULE_SCENARIOS PYTEST_ARGS


.PHONY: help deps lab lab-down lab-client test lint yamllint ansible-lint sanity specs unit integration molecule bench build changelog clean k8s-artifacts

help:
	@echo "make lab       - deploy the all-in-one stack into a local lab host and print its health table"
	@echo "make lab-client - the README's client: insert and search in pgvector and Milvus of the lab"
	@echo "make lab-down  - remove every lab container, network, volume and image it made"
	@echo "make test      - lint, sanity, unit, integration and molecule tests (installs what it needs)"
	@echo "make bench     - benchmarks (on demand, see bench/README.md)"
	@echo "make k8s-artifacts - build (or reuse) the Kubernetes control plane the tier's tests run on"
	@echo "make build     - build the collection tarball"
	@echo "make changelog - write CHANGELOG.rst: the next release's notes from changelogs/fragments"

deps: $(VENV)/.installed .collections/ansible_collections/aistack/infra

$(VENV)/.installed: requirements.txt requirements-test.txt
	tools/system-deps.sh
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements-test.txt
	touch $@

.collections/ansible_collections/aistack/infra:
	mkdir -p .collections/ansible_collections/aistack
	ln -sfn ../../.. .collections/ansible_collections/aistack/infra

lab: deps
	lab/bin/lab.sh up

lab-down:
	lab/bin/lab.sh down

# The README's lab client (the python block between the lab-client markers), run as written.
lab-client: deps
	mkdir -p build
	sed -n '/<!-- lab-client:start -->/,/<!-- lab-client:end -->/p' README.md | sed '1,2d;$$d' | sed '$$d' > build/lab_client.py
	python build/lab_client.py

k8s-artifacts: deps
	lab/artifacts/k8s/build.sh

test: deps
	tools/test.sh

lint: deps yamllint ansible-lint specs

yamllint: deps
	yamllint -s .

ansible-lint: deps
	ansible-lint --profile production

specs: deps
	python tools/check_argument_specs.py

sanity: deps
	tools/sanity.sh

unit: deps
	python -m pytest tests/unit $(PYTEST_ARGS)

integration: deps
	python -m pytest tests/integration $(PYTEST_ARGS)

molecule: deps
	tools/molecule.sh $(MOLECULE_SCENARIOS)

bench: deps
	bench/run.sh

build: deps
	mkdir -p build
	ansible-galaxy collection build --force --output-path build .

changelog: deps
	tools/changelog.sh CHANGELOG.rst

clean:
	rm -rf build tests/output .pytest_cache
