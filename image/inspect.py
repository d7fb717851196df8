"""`docker image inspect`-shaped JSON for an image."""
from __future__ import annotations


def inspect_view(store, ref: str) -> dict:
    """Resolve `ref` (NotFound if absent) and describe it the way docker does."""
    return inspect_doc(store, store.resolve(ref))


def inspect_doc(st, img) -> dict:
    cfg = img.config
    cc = dict(cfg.get("config") or {})
    docker_cc = {"Hostname": "", "Domainname": "", "User": cc.get("User", ""), "AttachStdin": False,
                 "AttachStdout": False, "AttachStderr": False, "ExposedPorts": cc.get("ExposedPorts"),
                 "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": cc.get("Env"), "Cmd": cc.get("Cmd"),
                 "Healthcheck": cc.get("Healthcheck"), "Image": "", "Volumes": cc.get("Volumes"),
                 "WorkingDir": cc.get("WorkingDir", ""), "Entrypoint": cc.get("Entrypoint"), "OnBuild": None,
                 "Labels": cc.get("Labels"), "StopSignal": cc.get("StopSignal")}
    docker_cc = {k: v for k, v in docker_cc.items() if not (k in ("ExposedPorts", "Healthcheck", "StopSignal") and not v)}
    hist = cfg.get("history") or []
    graph = {"Name": st.driver_name, "Data": None}
    if st.driver_name == "overlay" and img.layers:
        lowers = [st.layers.layer_dir(d) for d in reversed(img.layers)]
        graph["Data"] = {"UpperDir": lowers[0], "LowerDir": ":".join(lowers[1:])} if len(lowers) > 1 else {"UpperDir": lowers[0]}
    return {
        "Id": img.id,
        "RepoTags": img.names,
        "RepoDigests": [],
        "Parent": "",
        "Comment": (hist[-1].get("comment", "") if hist else ""),
        "Created": img.created,
        "DockerVersion": "",
        "Author": cfg.get("author", ""),
        "Config": docker_cc,
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        "Size": img.size,
        "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": img.layers},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }
