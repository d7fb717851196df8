#!/usr/bin/python3
"""nsbox VM lane: run a command as root in a pure cgroup-v2 Debian VM (qemu TCG).

    lane.py run [options] -- COMMAND...     (vagrant/vm-lane/run is a shim for this)
    lane.py build [options]                 build the image for the current key (if not cached)
    lane.py key [options]                   print the cache key and what it is made of

The image (kernel + initramfs + ext4 root provisioned by vagrant/provision.sh) is built by
build-image.sh and cached under --cache-dir (env NSBOX_VM_LANE_CACHE, default /var/tmp/nsbox-vm-lane)
in img-<key>/, where key = sha256(KEY_FILES contents, kernel package + version). A changed key
rebuilds and prunes the other images. The repository is shared into the guest over 9p at its host
path; before the command, guest-prepare.sh points the guest's editable nsbox at that repo.

COMMAND: one argument is a shell string (`run -- 'make; exit 7'`); several are quoted with
shlex.join (`run -- sh -c 'exit 7'`). It runs with /bin/sh in --cwd (default: $PWD if inside the
repo, else the repo root), with NSBOX_VM_LANE=1. Exit status: the command's; 124 timeout (total or
boot); 125 the guest reported no status; 2 usage error; 3 image build failed.
Stdlib only: runs with /usr/bin/python3 on a host that has no venv yet.
"""
import argparse, fcntl, hashlib, os, shlex, shutil, signal, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.realpath(os.path.join(HERE, "..", ".."))
# Files whose content defines the image. Editing any of them rebuilds the image.
KEY_FILES = ["vagrant/provision.sh", "vagrant/link-source.sh", "pyproject.toml", "vagrant/vm-lane/build-image.sh",
             "vagrant/vm-lane/init-stage1.sh", "vagrant/vm-lane/guest-init.sh"]
DEFAULT_CACHE = "/var/tmp/nsbox-vm-lane"
DEFAULT_KERNEL_META = "linux-image-6.12-amd64"
CMDLINE = "console=ttyS0 loglevel=4 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 panic=-1"
ARTIFACTS = ("vmlinuz", "initrd.cpio.gz", "root.img")


class LaneError(Exception):
    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


def log(msg):
    print(f"vm-lane: {msg}", file=sys.stderr, flush=True)


def cache_key(repo, kernel):
    """sha256 over the KEY_FILES (name + content) and the kernel id; 16 hex chars."""
    h = hashlib.sha256()
    for rel in KEY_FILES:
        with open(os.path.join(repo, rel), "rb") as f:
            data = f.read()
        h.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    h.update(b"kernel\0" + kernel.encode())
    return h.hexdigest()[:16]


def resolve_kernel(meta):
    """linux-image meta package -> (versioned package, candidate version), from the host's apt lists."""
    try:
        dep = subprocess.run(["apt-cache", "depends", meta], capture_output=True, text=True).stdout
        pkg = next(l.split()[-1] for l in dep.splitlines() if l.strip().startswith("Depends: linux-image-"))
        show = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg],
                              capture_output=True, text=True).stdout
        ver = next(l.split(None, 1)[1] for l in show.splitlines() if l.startswith("Version:"))
        return pkg, ver
    except (StopIteration, OSError):
        raise LaneError(f"cannot resolve kernel package {meta!r} from apt (run apt-get update?)", 3)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="vm-lane", description=__doc__.split("\n")[0])
    p.add_argument("action", choices=["run", "build", "key"])
    p.add_argument("--timeout", type=float, default=float(os.environ.get("NSBOX_VM_LANE_TIMEOUT", 1800)),
                   help="total seconds for boot + command (default 1800)")
    p.add_argument("--boot-timeout", type=float, default=180,
                   help="seconds until the guest must have mounted its control share (default 180)")
    p.add_argument("--cache-dir", default=os.environ.get("NSBOX_VM_LANE_CACHE", DEFAULT_CACHE))
    p.add_argument("--kernel-meta", default=os.environ.get("NSBOX_VM_LANE_KERNEL", DEFAULT_KERNEL_META))
    p.add_argument("--mem", type=int, default=2048, help="guest MiB (default 2048)")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--share", action="append", default=[], help="extra host dir shared at its path")
    p.add_argument("--cwd", default=None)
    p.add_argument("--no-build", action="store_true", help="fail (exit 3) instead of building the image")
    p.add_argument("--keep-log", action="store_true", help="keep the run's control dir (console.log)")
    # everything after the first "--" is the command (options never leak into it)
    opts, cmd = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    a = p.parse_args(opts)
    if a.action == "run":
        if not cmd:
            p.error("run needs a command after --")
        if a.timeout <= 0 or a.boot_timeout <= 0:
            p.error("timeouts must be positive")
    elif cmd:
        p.error(f"{a.action} takes no command")
    a.command = cmd[0] if len(cmd) == 1 else shlex.join(cmd)
    return a


def image_dir(a):
    pkg, ver = resolve_kernel(a.kernel_meta)
    key = cache_key(REPO, f"{pkg}={ver}")
    return key, pkg, os.path.join(a.cache_dir, f"img-{key}")


def ensure_image(a):
    key, pkg, d = image_dir(a)
    if all(os.path.exists(os.path.join(d, f)) for f in ARTIFACTS):
        return d
    if a.no_build:
        raise LaneError(f"no image for key {key} in {a.cache_dir} (--no-build)", 3)
    os.makedirs(a.cache_dir, exist_ok=True)
    with open(os.path.join(a.cache_dir, "build.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)          # one build at a time; others wait and reuse it
        if all(os.path.exists(os.path.join(d, f)) for f in ARTIFACTS):
            return d
        tmp = d + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"building image {key} ({pkg}) in {tmp}")
        t0 = time.time()
        env = dict(os.environ, KERNEL_PKG=pkg)
        # the build runs under a guard (this file, action _guard) that leads its own process group
        # and kills the whole group when we die, even by SIGKILL (PR_SET_PDEATHSIG)
        r = subprocess.run([sys.executable, os.path.realpath(__file__), "_guard",
                            os.path.join(HERE, "build-image.sh"), tmp], env=env, stdin=subprocess.DEVNULL,
                           stdout=sys.stderr, start_new_session=True, preexec_fn=_pdeathsig_term)
        if r.returncode != 0:
            raise LaneError(f"image build failed (rc={r.returncode}); partial build left in {tmp}", 3)
        os.rename(tmp, d)
        log(f"image {key} built in {time.time() - t0:.0f}s")
        for old in os.listdir(a.cache_dir):      # prune images of other keys (1+ GB each)
            if old.startswith("img-") and old != os.path.basename(d):
                shutil.rmtree(os.path.join(a.cache_dir, old), ignore_errors=True)
    return d


def _set_pdeathsig():
    # qemu dies with us even if we are SIGKILLed: no VM is ever left behind
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _pdeathsig_term():
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def guard(cmd):
    """Run cmd in our process group; on SIGTERM/SIGINT/SIGHUP (e.g. the parent lane died) kill the group."""
    def die(signum, frame):
        os.killpg(0, signal.SIGKILL)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, die)
    return subprocess.call(cmd, stdin=subprocess.DEVNULL)


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def boot(a, img):
    """Boot img, run a.command, return its exit status; once more if the guest kernel panicked.

    A panic is not a test result: under TCG (-cpu max, multi-threaded) the stock guest kernel has
    been seen to oops in the scheduler, once in several runs, in the middle of a test that had
    passed every other run. A second panic fails the lane.
    """
    rc, panicked = _boot_once(a, img)
    if panicked:
        log("the guest kernel panicked (an emulator or guest-kernel fault, not a test result); "
            "booting once more")
        rc, _ = _boot_once(a, img)
    return rc


def _boot_once(a, img):
    """Boot img, run a.command; returns (exit status, whether the guest kernel panicked)."""
    shares = [REPO] + [os.path.realpath(s) for s in a.share]
    cwd = os.path.realpath(a.cwd) if a.cwd else os.path.realpath(os.getcwd())
    if not a.cwd and not any(cwd == s or cwd.startswith(s + "/") for s in shares):
        cwd = REPO
    os.makedirs(a.cache_dir, exist_ok=True)
    ctl = tempfile.mkdtemp(prefix="run-", dir=a.cache_dir)
    with open(os.path.join(ctl, "cmd"), "w") as f:
        f.write(a.command + "\n")
    with open(os.path.join(ctl, "cwd"), "w") as f:
        f.write(cwd + "\n")
    with open(os.path.join(ctl, "prepare"), "w") as f:
        f.write(f"exec /bin/sh {shlex.quote(os.path.join(HERE, 'guest-prepare.sh'))} {shlex.quote(REPO)}\n")
    virtfs = ["-virtfs", f"local,path={ctl},mount_tag=lane,security_model=passthrough,id=lane"]
    with open(os.path.join(ctl, "shares"), "w") as f:
        for i, s in enumerate(shares):
            virtfs += ["-virtfs", f"local,path={s},mount_tag=share{i},security_model=passthrough,id=share{i}"]
            f.write(f"share{i} {s}\n")
    console = os.path.join(ctl, "console.log")
    qemu = ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", str(a.cpus), "-m", str(a.mem), "-nodefaults", "-display", "none", "-monitor", "none",
            "-no-reboot", "-kernel", f"{img}/vmlinuz", "-initrd", f"{img}/initrd.cpio.gz",
            "-append", CMDLINE, "-drive", f"file={img}/root.img,if=virtio,format=raw,snapshot=on",
            *virtfs, "-serial", f"file:{console}", "-serial", "stdio"]
    t0 = time.monotonic()
    proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, preexec_fn=_set_pdeathsig)
    failure = None
    try:
        booted = False
        while proc.poll() is None:
            el = time.monotonic() - t0
            if not booted and os.path.exists(os.path.join(ctl, "booted")):
                booted = True
                if os.environ.get("NSBOX_VM_LANE_VERBOSE"):
                    log(f"guest up after {el:.1f}s")
            if not booted and el > a.boot_timeout:
                failure = (124, f"guest did not boot within {a.boot_timeout:.0f}s")
                break
            if el > a.timeout:
                failure = (124, f"timed out after {a.timeout:.0f}s")
                break
            time.sleep(0.2)
    finally:
        _stop(proc)                       # also on KeyboardInterrupt / SIGTERM (SystemExit)
    rcfile = os.path.join(ctl, "rc")
    panicked = False
    if failure is None:
        if os.path.exists(rcfile) and open(rcfile).read().strip():
            rc = int(open(rcfile).read().strip())
        else:
            failure = (125, f"the guest reported no exit status (qemu rc={proc.returncode})")
            try:
                with open(console, errors="replace") as f:
                    panicked = "Kernel panic" in f.read()
            except OSError:
                pass
    if failure:
        rc, msg = failure
        log(msg + "; guest console tail:")
        try:
            with open(console, errors="replace") as f:
                tail = f.readlines()[-40:]
            sys.stderr.write("".join(tail) if tail else "(console log empty)\n")
        except OSError:
            pass
    if a.keep_log:
        log(f"logs kept in {ctl}")
    else:
        shutil.rmtree(ctl, ignore_errors=True)
    return rc, panicked


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_guard"]:
        return guard(argv[1:])
    a = parse_args(argv)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    try:
        if a.action == "key":
            pkg, ver = resolve_kernel(a.kernel_meta)
            key = cache_key(REPO, f"{pkg}={ver}")
            print(key)
            print(f"kernel: {pkg}={ver}\nfiles: {' '.join(KEY_FILES)}\ndir: {a.cache_dir}/img-{key}",
                  file=sys.stderr)
            return 0
        if os.geteuid() != 0:
            raise LaneError("must run as root", 2)
        img = ensure_image(a)
        if a.action == "build":
            print(img)
            return 0
        return boot(a, img)
    except LaneError as e:
        log(str(e))
        return e.code


if __name__ == "__main__":
    sys.exit(main())
