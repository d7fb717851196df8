#!/bin/bash
# README command 2: the whole test suite, on a fresh Debian 12 machine as root.
#   1. provision (idempotent): apt packages, the venv, nsbox on PATH, and the VM lane's host tools
#   2. the host suite (this machine's cgroup layout; v1 on a hybrid host)
#   3. the VM lane: the tests marked `vm` again inside a qemu guest booted with pure cgroup v2
# Environment: NSBOX_SKIP_VM=1 skips step 3; extra arguments go to the host pytest.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
bash vagrant/provision.sh --lane-host --test-deps
PY=/opt/nsbox/venv/bin/python

echo "== host suite"
host_rc=0
"$PY" -m pytest -q -rfE "$@" tests || host_rc=$?

vm_rc=0
if [ "${NSBOX_SKIP_VM:-0}" != 1 ]; then
    echo "== VM lane (pure cgroup v2)"
    vagrant/vm-lane/test || vm_rc=$?
fi
echo "== host suite rc=$host_rc, VM lane rc=$vm_rc"
[ "$host_rc" = 0 ] && [ "$vm_rc" = 0 ]
