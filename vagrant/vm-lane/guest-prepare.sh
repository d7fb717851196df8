#!/bin/sh
# guest-prepare.sh REPO: runs inside the lane guest before the command (from the 9p-shared repo, so
# editing it needs no image rebuild). The guest's venv was built at image time with an editable
# nsbox pointing at the repo path of that time; if nsbox does not import from REPO (another clone
# or path), re-point it offline with vagrant/link-source.sh (no pip, no network).
set -eu
REPO=$1
PY=/opt/nsbox/venv/bin/python
where() { "$PY" -c 'import os, nsbox.runtime as m; print(os.path.realpath(m.__file__))' 2>/dev/null || true; }
case "$(where)" in
    "$REPO"/*) exit 0;;
esac
sh "$REPO/vagrant/link-source.sh" "$REPO" /opt/nsbox/venv >/tmp/lane-link.log 2>&1 \
    || { echo "lane-prepare: linking nsbox to $REPO failed:"; cat /tmp/lane-link.log; exit 1; }
case "$(where)" in
    "$REPO"/*) ;;
    *) echo "lane-prepare: nsbox still imports from '$(where)', not $REPO"; exit 1;;
esac
# keep provision.sh's idempotence stamp in line (same pyproject.toml: it is part of the image key)
echo "$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1) $REPO" > /opt/nsbox/venv/.nsbox-provisioned
