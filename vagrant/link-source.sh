#!/bin/sh
# link-source.sh REPO VENV: make VENV's Python import nsbox.* straight from REPO's folders.
#
# Why not setuptools' editable finder: its .pth imports an import-hook module (and importlib.util,
# pathlib) in EVERY Python process of the venv, ~15 ms each, and nsbox starts two per `run` (the
# CLI and the monitor). A directory of symlinks on a plain .pth path costs nothing, and new
# modules in REPO show up without reinstalling. pip's metadata and the `nsbox` script stay.
set -eu
REPO=$1
VENV=$2
PY="$VENV/bin/python"
SP=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -f "$SP"/__editable__.nsbox-*.pth "$SP"/__editable___nsbox_*_finder.py
mkdir -p "$VENV/nsbox-src/nsbox"
for d in runtime image network cli; do
    ln -sfn "$REPO/$d" "$VENV/nsbox-src/nsbox/$d"
done
echo "$VENV/nsbox-src" > "$SP/nsbox-src.pth"
# bytecode up front: the environment may set PYTHONDONTWRITEBYTECODE, and then every CLI start
# would compile nsbox from source again
"$PY" -m compileall -q -j 0 "$REPO/runtime" "$REPO/image" "$REPO/network" "$REPO/cli" >/dev/null || true
# The nsbox command itself, in place of pip's script: -S skips site (~2.5 ms on every command);
# the thin client needs only nsbox-src, and its in-process fallback loads site itself (cli/entry.py)
cat > "$VENV/bin/nsbox.tmp" <<SCRIPT
#!$VENV/bin/python -IS
import sys
sys.path.insert(0, "$VENV/nsbox-src")
from nsbox.cli.entry import main
main()
SCRIPT
chmod 755 "$VENV/bin/nsbox.tmp"
mv -f "$VENV/bin/nsbox.tmp" "$VENV/bin/nsbox"
