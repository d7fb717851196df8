"""Host-side, no boot: the VM lane's cache key and argument handling (vagrant/vm-lane/lane.py)."""
import importlib.util
import os
import shutil
import subprocess

import pytest

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
LANE_DIR = os.path.join(REPO, "vagrant", "vm-lane")


def load_lane():
    spec = importlib.util.spec_from_file_location("nsbox_vm_lane", os.path.join(LANE_DIR, "lane.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


lane = load_lane()


@pytest.fixture
def fake_repo(tmp_path):
    for rel in lane.KEY_FILES:
        os.makedirs(tmp_path / os.path.dirname(rel), exist_ok=True)
        shutil.copy(os.path.join(REPO, rel), tmp_path / rel)
    return tmp_path


def test_key_is_stable_and_short(fake_repo):
    k = lane.cache_key(str(fake_repo), "linux-image-6.12.1-amd64=6.12.1-1")
    assert k == lane.cache_key(str(fake_repo), "linux-image-6.12.1-amd64=6.12.1-1")
    assert len(k) == 16 and int(k, 16) >= 0
    assert k == lane.cache_key(REPO, "linux-image-6.12.1-amd64=6.12.1-1")  # same content, other path


@pytest.mark.parametrize("rel", lane.KEY_FILES)
def test_key_changes_with_each_key_file(fake_repo, rel):
    before = lane.cache_key(str(fake_repo), "k")
    with open(fake_repo / rel, "a") as f:
        f.write("\n# changed\n")
    assert lane.cache_key(str(fake_repo), "k") != before


def test_key_changes_with_kernel(fake_repo):
    assert lane.cache_key(str(fake_repo), "linux-image-6.12.1-amd64=1") != \
        lane.cache_key(str(fake_repo), "linux-image-6.12.1-amd64=2")


def test_key_ignores_files_outside_the_key(fake_repo):
    before = lane.cache_key(str(fake_repo), "k")
    (fake_repo / "README.md").write_text("unrelated")
    assert lane.cache_key(str(fake_repo), "k") == before


def test_key_files_cover_the_build_inputs():
    for f in ("vagrant/provision.sh", "pyproject.toml", "vagrant/vm-lane/build-image.sh",
              "vagrant/vm-lane/guest-init.sh", "vagrant/vm-lane/init-stage1.sh"):
        assert f in lane.KEY_FILES


def test_args_single_command_is_a_shell_string():
    a = lane.parse_args(["run", "--timeout", "30", "--", "echo hi; exit 7"])
    assert a.command == "echo hi; exit 7" and a.timeout == 30


def test_args_several_words_are_quoted():
    a = lane.parse_args(["run", "--", "sh", "-c", "exit 7"])
    assert a.command == "sh -c 'exit 7'"


def test_args_defaults(monkeypatch):
    monkeypatch.delenv("NSBOX_VM_LANE_CACHE", raising=False)
    monkeypatch.delenv("NSBOX_VM_LANE_TIMEOUT", raising=False)
    a = lane.parse_args(["run", "--", "true"])
    assert a.cache_dir == "/var/tmp/nsbox-vm-lane" and a.timeout == 1800 and a.boot_timeout == 180
    monkeypatch.setenv("NSBOX_VM_LANE_CACHE", "/tmp/x")
    assert lane.parse_args(["run", "--", "true"]).cache_dir == "/tmp/x"


@pytest.mark.parametrize("argv", [["run"], ["run", "--"], ["run", "--timeout", "0", "--", "true"],
                                  ["run", "--timeout", "abc", "--", "true"], ["key", "--", "true"],
                                  ["nope"]])
def test_args_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        lane.parse_args(argv)
    assert e.value.code == 2


def test_run_script_usage_error_exit_2():
    r = subprocess.run([os.path.join(LANE_DIR, "run")], capture_output=True, text=True)
    assert r.returncode == 2 and "needs a command" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-cache"), reason="needs root and apt")
def test_no_build_with_empty_cache_exits_3_without_booting(tmp_path):
    r = subprocess.run([os.path.join(LANE_DIR, "run"), "--no-build", "--cache-dir", str(tmp_path), "--", "true"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "--no-build" in r.stderr and os.listdir(tmp_path) == []


def test_boot_retries_once_after_a_guest_kernel_panic_only(monkeypatch):
    calls = []

    def fake(results):
        def boot_once(a, img):
            calls.append(1)
            return results[len(calls) - 1]
        return boot_once
    for results, want_rc, want_calls in (([(125, True), (0, False)], 0, 2),   # panic, then a clean run
                                         ([(125, True), (125, True)], 125, 2),  # panics twice: fails
                                         ([(1, False)], 1, 1),                 # a failing test: no retry
                                         ([(125, False)], 125, 1)):            # no status, no panic: no retry
        calls.clear()
        monkeypatch.setattr(lane, "_boot_once", fake(results))
        assert lane.boot(None, None) == want_rc
        assert len(calls) == want_calls
