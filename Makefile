# Failover Lab: `make lab` brings up a practice cluster, `make test` runs the tests.
PYTHON ?= python3
NODES ?= 2

.PHONY: lab deps test test-fast test-vm test-catalogue test-slowhost lint bench box

deps:
	bash .ci/host-deps.sh
	$(PYTHON) -m pip install -q -e '.[vm,test]'

box: deps
	bash boxes/debian12/build.sh

lab: box
	bash .ci/libvirt-up.sh
	lab doctor
	lab up --nodes $(NODES)

# The default test run: offline grading tests, SSH tests on a loopback sshd (on every core:
# pytest-xdist), then the end-to-end VM tests (box build, lab up, every seed exercise, lab grade
# of the live lab, lab destroy) on their own.
test: deps
	bash .ci/libvirt-up.sh
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -ra -n auto -m "not vm and not catalogue and not slowhost" tests
	$(PYTHON) -m pytest -q -ra -m "vm and not catalogue and not slowhost" tests

# Everything except real VMs (a few minutes).
test-fast: deps
	$(PYTHON) -m pytest -q -ra -n auto -m "not vm and not catalogue and not slowhost" tests

# The whole catalogue live on VMs (long; see README).
test-catalogue: deps
	bash .ci/libvirt-up.sh
	LAB_CATALOGUE=1 $(PYTHON) -m pytest -q -ra -m catalogue tests

# lab up on guests throttled to 25 % of a core, interrupted (SIGINT) three times, then resumed.
test-slowhost: deps
	bash .ci/libvirt-up.sh
	$(PYTHON) -m pytest -q -ra -m slowhost -p no:cacheprovider tests/test_vm_slowhost.py

lint:
	$(PYTHON) -m ruff check .

bench: deps
	$(PYTHON) bench/grade_offline.py
