"""`nsbox network ...` through the real CLI entry point (main), against a tmp state root."""
from __future__ import annotations

import json
import subprocess

import pytest

from nsbox.cli.main import main
from nsbox.network import api, config, netns
from nsbox.network.model import EndpointRequest

from nsnet_helpers import free_subnet


def run(env, capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ei:
        main(["--root", env.paths.root, "--runroot", env.paths.runroot, "network", *args])
    out = capsys.readouterr()
    return ei.value.code, out.out, out.err


def test_network_create_ls_inspect_rm_prune(env, capsys):
    sub = free_subnet(env.taken)
    gw = sub.replace(".0/24", ".254")
    code, out, _ = run(env, capsys, "create", "--subnet", sub, "--gateway", gw, "--label", "a=b", f"n1{env.tag}")
    assert code == 0 and len(out.strip()) == 64
    code, out, err = run(env, capsys, "create", f"n1{env.tag}")
    assert code == 125 and "already exists" in err and err.count("\n") == 1
    code, _, err = run(env, capsys, "create", "--subnet", sub, f"n2{env.tag}")
    assert code == 125 and "overlaps" in err
    code, _, err = run(env, capsys, "create", "--subnet", "10.1.2.3/24", f"n3{env.tag}")
    assert code == 125 and "invalid subnet" in err
    run(env, capsys, "create", "--internal", "--subnet", free_subnet(env.taken), f"n4{env.tag}")
    code, out, _ = run(env, capsys, "ls")
    lines = out.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [ln.split()[1] for ln in lines[1:]] == ["bridge", f"n1{env.tag}", f"n4{env.tag}"]
    code, out, _ = run(env, capsys, "inspect", f"n1{env.tag}", "bridge")
    [n1, br] = json.loads(out)
    assert n1["IPAM"]["Config"] == [{"Subnet": sub, "Gateway": gw}] and n1["Labels"] == {"a": "b"}
    assert br["Options"]["com.docker.network.bridge.name"] == env.bridge and br["IPAM"]["Config"][0]["Subnet"] == env.subnet
    code, _, err = run(env, capsys, "inspect", "nope")
    assert code == 125 and "not found" in err
    code, _, err = run(env, capsys, "rm", "bridge")
    assert code == 125 and "pre-defined" in err
    # a network in use cannot be removed; prune skips it
    c = env.container("c", networks=[EndpointRequest(f"n1{env.tag}")])
    code, out, _ = run(env, capsys, "inspect", f"n1{env.tag}")
    assert json.loads(out)[0]["Containers"][c.cid]["IPv4Address"] == f"{c.ip}/24"
    code, _, err = run(env, capsys, "rm", f"n1{env.tag}")
    assert code == 125 and "active endpoints" in err
    code, out, _ = run(env, capsys, "prune", "-f")
    assert code == 0 and out.split() == ["Deleted", "Networks:", f"n4{env.tag}"]
    api.detach(env.paths, c.cid)
    code, out, _ = run(env, capsys, "rm", f"n1{env.tag}")
    assert code == 0 and out.strip() == f"n1{env.tag}"
    assert [n.name for n in config.list_networks(env.paths)] == ["bridge"]


def test_cli_connect_disconnect_running_container(env, capsys):
    """connect/disconnect look the container up in the core's store (a hand-made running record here)."""
    from nsbox.runtime.state import ContainerRecord, ContainerState, RUNNING, proc_starttime
    net = config.create_network(env.paths, f"cc{env.tag}", subnet=free_subnet(env.taken))
    a = env.container("web")
    sleeper = env.spawn(a.netns, "sleep", "600")
    rec = ContainerRecord(env.paths, a.cid)
    rec.save_config({"Name": "/web", "Id": a.cid})
    from nsbox.runtime.store import ContainerStore
    ContainerStore(env.paths).reserve_name("web", a.cid)
    rec.save_state(ContainerState(Status=RUNNING, Pid=sleeper.pid, PidStart=proc_starttime(sleeper.pid),
                                  NetNS=a.netns, Network=a.status.to_dict()))
    code, _, err = run(env, capsys, "connect", "--alias", "w2", net.name, "web")
    assert code == 0, err
    st = rec.load_state()
    assert net.name in st.Network["Networks"] and st.Network["Networks"][net.name]["Aliases"] == ["w2"]
    assert "eth1" in subprocess.run(["nsenter", f"--net={a.netns}", "ip", "-br", "link"],
                                    capture_output=True, text=True).stdout
    code, _, err = run(env, capsys, "connect", net.name, "web")
    assert code == 125 and "already connected" in err
    code, _, err = run(env, capsys, "disconnect", net.name, "web")
    assert code == 0, err
    assert net.name not in rec.load_state().Network["Networks"]
    code, _, err = run(env, capsys, "disconnect", net.name, "web")
    assert code == 125 and "not connected" in err
