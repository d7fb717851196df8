"""`nsbox build`: run a parsed Dockerfile stage by stage, one committed image per step (docker's
classic builder), with a build cache and docker's plain progress output.

Exit codes: a Dockerfile/flag/context problem found before or while evaluating an instruction is
an InvalidArgument (125, nsbox's usage errors); a RUN that exits non-zero is a BuildFailed (1,
what `docker build` exits with for a failed step). Either way no image is tagged and every build
container is removed; intermediate images are only ever committed whole.
"""
from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass, field

from nsbox.image.build import instructions as I
from nsbox.image.build.parser import Instruction, err
from nsbox.runtime.errors import InvalidArgument, NsboxError

# docker's predefined ARGs: usable without an ARG line, never reported as unused
BUILTIN_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}


class BuildFailed(NsboxError):
    """A failed build step: exit 1, and docker's own output shape (the step's error, then
    "The command ... returned a non-zero code"), so its message may span those lines."""
    exit_code = 1

    def __init__(self, msg: str):
        Exception.__init__(self, msg)


@dataclass
class BuildOptions:
    context: str
    dockerfile: str
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    network: str = "host"


@dataclass
class Stage:
    name: str
    index: int
    from_ins: Instruction
    body: list[Instruction]
    config: dict | None = None          # the current image config
    image_id: str = ""                  # "" while the config is not committed (FROM scratch)
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False


class Output:
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, line: str) -> None:
        if not self.quiet:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def split_stages(instrs: list[Instruction]) -> tuple[list[Instruction], list[Stage]]:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instrs:
        if ins.cmd == "ONBUILD":
            raise err(ins.line, "ONBUILD is not supported by nsbox build")
        if ins.cmd == "FROM":
            words = ins.rest.split()
            name = ""
            if len(words) == 3 and words[1].lower() == "as":
                name = words[2].lower()
                if not name or not name[0].isalpha():
                    raise err(ins.line, f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                                        f"or contain symbols")
                if any(s.name == name for s in stages):
                    raise err(ins.line, f"duplicate name {words[2]!r}")
            elif len(words) != 1:
                raise err(ins.line, "FROM requires either one or three arguments")
            stages.append(Stage(name, len(stages), ins, []))
        elif not stages:
            if ins.cmd != "ARG":
                raise err(ins.line, "no build stage in current context")
            meta.append(ins)
        else:
            stages[-1].body.append(ins)
    if not stages:
        raise InvalidArgument("the Dockerfile has no FROM instruction (file with no instructions)")
    return meta, stages


class Builder:
    def __init__(self, paths, opts: BuildOptions):
        from nsbox.image.build.cache import BuildCache
        from nsbox.image.store import ImageStore
        self.paths = paths
        self.opts = opts
        self.store = ImageStore(paths)
        self.cache = BuildCache(self.store)
        self.out = Output(opts.quiet)
        self.escape = "\\"
        self.used_args: set[str] = set()
        self.ctx = None
        self._engine = None
        self.journal = None

    # ------------------------------------------------------------------ driver
    def build(self, text: str):
        from nsbox.image import reference
        from nsbox.image.build import dockerignore, parser
        from nsbox.image.build.context import Context
        for t in self.opts.tags:
            reference.parse(t)
        df = parser.parse(text)
        if not df.instructions:
            raise InvalidArgument("the Dockerfile cannot be empty")
        self.escape = df.escape
        meta, stages = split_stages(df.instructions)
        for s in stages:
            for ins in s.body:
                if ins.cmd == "ADD" and _has_url(ins):
                    raise err(ins.line, "ADD from a URL is not supported by nsbox build (no network access for "
                                        "sources): download it in a RUN step or into the context")
        last = len(stages) - 1
        if self.opts.target:
            idx = [s.index for s in stages if s.name == self.opts.target.lower()]
            if not idx:
                raise InvalidArgument(f"failed to reach build target {self.opts.target} in Dockerfile")
            last = idx[0]
        stages = stages[:last + 1]
        self.ctx = Context(self.opts.context, dockerignore.load(self.opts.context))
        self.global_args: dict[str, str] = {}
        for ins in meta:
            for k, v in I.arg_decls(ins, self.global_args, self.escape):
                if k in self.opts.build_args:
                    self.global_args[k] = self.opts.build_args[k]
                    self.used_args.add(k)
                elif v is not None:
                    self.global_args[k] = v
        from nsbox.image.leftovers import BuildJournal
        self.journal = BuildJournal(self.store)  # a kill -9 leaves it, and the next store open sweeps
        try:
            return self._build(stages)
        finally:
            self.journal.close()

    def _build(self, stages):
        total = sum(1 + len(s.body) for s in stages)
        n = 0
        with self.store.import_guard():   # keeps GC from collecting this build's fresh layers
            for s in stages:
                n += 1
                self.out(f"Step {n}/{total} : {s.from_ins.original}")
                self._from(s, stages)
                for ins in s.body:
                    n += 1
                    self.out(f"Step {n}/{total} : {ins.original}")
                    self._step(s, ins, stages)
            final = stages[-1]
            if not final.image_id:
                final.image_id = self._commit(final.config).id
            if self.opts.labels:
                cfg = copy.deepcopy(final.config)
                cc = cfg.setdefault("config", {})
                cc["Labels"] = {**(cc.get("Labels") or {}), **self.opts.labels}
                final.image_id = self._commit(cfg).id
        unused = sorted(k for k in self.opts.build_args if k not in self.used_args and k not in BUILTIN_ARGS)
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        image_id = final.image_id
        for t in self.opts.tags:
            self.store.tag(image_id, t)
        return image_id

    def _commit(self, cfg: dict):
        import hashlib
        from nsbox.image.imageconfig import serialize
        raw = serialize(cfg)
        if self.journal is not None:  # before the image exists: a kill in between leaves no stray
            self.journal.add("sha256:" + hashlib.sha256(raw).hexdigest())
        return self.store.commit_image(cfg, raw=raw)

    # ------------------------------------------------------------------ FROM
    def _from(self, s: Stage, stages: list[Stage]) -> None:
        base = I.sub(s.from_ins.rest.split()[0], self.global_args, self.escape, s.from_ins.line)
        if "platform" in s.from_ins.flags:
            pass  # single-platform store: accepted and ignored
        if not base:
            raise err(s.from_ins.line, "base name should not be blank")
        prev = next((p for p in stages[:s.index] if p.name and p.name == base.lower()), None)
        if base == "scratch":
            from nsbox.image.imageconfig import DEFAULT_PATH, arch
            s.config = {"architecture": arch(), "os": "linux", "config": {"Env": [DEFAULT_PATH]},
                        "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            s.image_id = ""
            self.out(" ---> (scratch)" if False else " ---> scratch")
        elif prev is not None:
            if not prev.image_id:
                prev.image_id = self._commit(prev.config).id
            s.config = copy.deepcopy(prev.config)
            s.image_id = prev.image_id
            self.out(f" ---> {s.image_id[7:19]}")
        else:
            try:
                from nsbox.image.registry import ensure_image  # pulls when missing, like docker build
                img = ensure_image(self.store.paths, base, "missing")
            except NsboxError as e:
                raise BuildFailed(f"pull access denied for {base}: {e}") from None
            s.config = copy.deepcopy(img.config)
            s.image_id = img.id
            self.out(f" ---> {img.short_id}")
        s.config.setdefault("config", {})
        if s.config["config"].get("OnBuild"):
            raise InvalidArgument(f"base image {base} has ONBUILD triggers, which nsbox build does not support")

    # ------------------------------------------------------------------ one step
    def _env(self, s: Stage) -> dict[str, str]:
        return {**s.args, **I.env_dict(s.config["config"].get("Env") or [])}

    def _step(self, s: Stage, ins: Instruction, stages: list[Stage]) -> None:
        handler = getattr(self, "_i_" + ins.cmd.lower())
        handler(s, ins, stages)

    def _meta(self, s: Stage, ins: Instruction, text: str, edit) -> None:
        """A metadata-only step: edit the config, add an empty_layer history entry, commit (or cache)."""
        cfg = copy.deepcopy(s.config)
        edit(cfg, cfg.setdefault("config", {}))
        created_by = f"/bin/sh -c #(nop)  {text}"
        key = self.cache.key(s.image_id or "scratch:" + _cfg_digest(s.config), created_by, "",
                             {"cfg": _cfg_digest({k: v for k, v in cfg.items() if k not in ("created", "history")})})
        if self._cached(s, key):
            return
        self._finish(s, cfg, created_by, None, key)

    def _cached(self, s: Stage, key: str) -> bool:
        if self.opts.no_cache:
            return False
        img = self.cache.get(key)
        if img is None:
            return False
        self.out(" ---> Using cache")
        if self.journal is not None:  # a dangling cached image this build stands on is not debris
            self.journal.add(img.id)
        s.config = copy.deepcopy(img.config)
        s.image_id = img.id
        self.out(f" ---> {img.short_id}")
        return True

    def _finish(self, s: Stage, cfg: dict, created_by: str, diff_id: str | None, key: str,
                empty: bool | None = None) -> None:
        from nsbox.image.imageconfig import now
        created = now()
        cfg["created"] = created
        h = {"created": created, "created_by": created_by}
        if diff_id is None:
            h["empty_layer"] = True
        else:
            cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            cfg["rootfs"]["diff_ids"] = list(cfg["rootfs"].get("diff_ids") or []) + [diff_id]
        cfg["history"] = list(cfg.get("history") or []) + [h]
        cfg.pop("container", None)
        img = self._commit(cfg)
        if s.image_id and s.image_id != img.id:
            self.cache.set_parent(img.id, s.image_id)
        self.cache.put(key, img.id)
        s.config = img.config
        s.image_id = img.id
        self.out(f" ---> {img.short_id}")

    # ------------------------------------------------------------------ metadata instructions
    def _i_env(self, s, ins, stages):
        pairs = I.name_values(ins, self._env(s), self.escape)

        def edit(cfg, cc):
            env = list(cc.get("Env") or [])
            for k, v in pairs:
                env = I.env_list_set(env, k, v)
            cc["Env"] = env
        self._meta(s, ins, "ENV " + " ".join(f"{k}={v}" for k, v in pairs), edit)

    def _i_label(self, s, ins, stages):
        pairs = I.name_values(ins, self._env(s), self.escape)

        def edit(cfg, cc):
            cc["Labels"] = {**(cc.get("Labels") or {}), **dict(pairs)}
        self._meta(s, ins, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), edit)

    def _i_maintainer(self, s, ins, stages):
        if not ins.rest:
            raise err(ins.line, "MAINTAINER requires exactly one argument")

        def edit(cfg, cc):
            cfg["author"] = ins.rest
        self._meta(s, ins, f"MAINTAINER {ins.rest}", edit)

    def _i_arg(self, s, ins, stages):
        decls = I.arg_decls(ins, self._env(s), self.escape)
        parts = []
        for k, v in decls:
            if k in self.opts.build_args:
                s.args[k] = self.opts.build_args[k]
                self.used_args.add(k)
            elif v is not None:
                s.args[k] = v
            elif k in self.global_args:
                s.args[k] = self.global_args[k]   # `ARG NAME` re-declares a global ARG in the stage
            parts.append(k if v is None else f"{k}={v}")
        self._meta(s, ins, "ARG " + " ".join(parts), lambda cfg, cc: None)

    def _i_expose(self, s, ins, stages):
        ps = I.ports(I.subs(ins.rest, self._env(s), self.escape, ins.line), ins.line)
        if not ps:
            raise err(ins.line, "EXPOSE requires at least one argument")

        def edit(cfg, cc):
            cc["ExposedPorts"] = {**(cc.get("ExposedPorts") or {}), **{p: {} for p in ps}}
        self._meta(s, ins, "EXPOSE " + " ".join(ps), edit)

    def _i_volume(self, s, ins, stages):
        vols = ins.json if ins.json is not None else I.subs(ins.rest, self._env(s), self.escape, ins.line)
        if not vols or any(not v.strip() for v in vols):
            raise err(ins.line, "VOLUME specified can not be an empty string")

        def edit(cfg, cc):
            cc["Volumes"] = {**(cc.get("Volumes") or {}), **{v: {} for v in vols}}
        self._meta(s, ins, f"VOLUME {vols}", edit)

    def _i_user(self, s, ins, stages):
        user = I.sub(ins.rest, self._env(s), self.escape, ins.line)
        if not user:
            raise err(ins.line, "USER requires exactly one argument")
        self._meta(s, ins, f"USER {user}", lambda cfg, cc: cc.__setitem__("User", user))

    def _i_stopsignal(self, s, ins, stages):
        sig = I.sub(ins.rest, self._env(s), self.escape, ins.line)
        from nsbox.runtime.engine import parse_signal
        try:
            parse_signal(sig)
        except InvalidArgument as e:
            raise err(ins.line, str(e)) from None
        self._meta(s, ins, f"STOPSIGNAL {sig}", lambda cfg, cc: cc.__setitem__("StopSignal", sig))

    def _shell(self, s) -> list[str]:
        return list(s.config["config"].get("Shell") or I.DEFAULT_SHELL)

    def _i_shell(self, s, ins, stages):
        sh = I.parse_shell(ins)
        self._meta(s, ins, f"SHELL {sh}", lambda cfg, cc: cc.__setitem__("Shell", sh))

    def _i_cmd(self, s, ins, stages):
        cmd = I.command_form(ins, self._shell(s))
        s.cmd_set = True
        self._meta(s, ins, "CMD " + _fmt(cmd), lambda cfg, cc: cc.__setitem__("Cmd", cmd))

    def _i_entrypoint(self, s, ins, stages):
        ep = I.command_form(ins, self._shell(s)) if (ins.json or ins.rest) else []

        def edit(cfg, cc):
            cc["Entrypoint"] = ep or None
            if not s.cmd_set:
                cc.pop("Cmd", None)   # docker: ENTRYPOINT resets a CMD inherited from the base image
        self._meta(s, ins, "ENTRYPOINT " + _fmt(ep), edit)

    def _i_healthcheck(self, s, ins, stages):
        hc = I.healthcheck(ins, self._shell(s))
        self._meta(s, ins, f"HEALTHCHECK {hc}", lambda cfg, cc: cc.__setitem__("Healthcheck", hc))

    def _i_onbuild(self, s, ins, stages):
        raise err(ins.line, "ONBUILD is not supported by nsbox build")

    def _i_from(self, s, ins, stages):  # pragma: no cover - split_stages handles FROM
        raise err(ins.line, "unexpected FROM")

    # ------------------------------------------------------------------ filesystem instructions
    def _i_workdir(self, s, ins, stages):
        import posixpath
        w = I.sub(ins.rest, self._env(s), self.escape, ins.line)
        if not w:
            raise err(ins.line, "WORKDIR requires exactly one argument")
        cur = s.config["config"].get("WorkingDir") or "/"
        w = posixpath.normpath(posixpath.join(cur, w))
        created_by = f"/bin/sh -c #(nop) WORKDIR {w}"
        key = self.cache.key(s.image_id or "scratch:" + _cfg_digest(s.config), created_by)
        if self._cached(s, key):
            return
        from nsbox.image.build import copier, overlayfs
        diff_id = overlayfs.run_in_overlay(self.store, s.config["rootfs"]["diff_ids"],
                                           lambda root, _src: copier.do_workdir(root, w))
        cfg = copy.deepcopy(s.config)
        cfg["config"]["WorkingDir"] = w
        self._finish(s, cfg, created_by, diff_id, key)

    def _i_copy(self, s, ins, stages, add: bool = False):
        import posixpath
        from nsbox.image.build import copier, overlayfs
        from nsbox.image.build.context import Context
        what = "ADD" if add else "COPY"
        env = self._env(s)
        args = list(ins.json) if ins.json is not None else I.subs(ins.rest, env, self.escape, ins.line)
        if ins.json is not None:
            args = [I.sub(a, env, self.escape, ins.line) for a in args]
        if len(args) < 2:
            raise err(ins.line, f"{what} requires at least two arguments, but only one was provided. "
                                f"Destination could not be determined")
        srcs, dest = args[:-1], args[-1]
        for f in ("link", "parents", "exclude", "checksum", "keep-git-dir"):
            if f in ins.flags:
                raise err(ins.line, f"{what} --{f} is not supported by nsbox build")
        chmod = None
        if "chmod" in ins.flags:
            try:
                chmod = int(ins.flags["chmod"], 8)
            except ValueError:
                raise err(ins.line, f"invalid --chmod value {ins.flags['chmod']!r}") from None
        cur = s.config["config"].get("WorkingDir") or "/"
        dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
        full = posixpath.normpath(posixpath.join(cur, dest))
        chown = I.sub(ins.flags.get("chown", ""), env, self.escape, ins.line)
        spec = copier.CopySpec(srcs, full, dest_is_dir, chown, chmod, add, keep_owner=False)
        src_from = ins.flags.get("from", "")
        src_diff_ids = None
        kind = "multi" if len(srcs) > 1 else "dir"
        if src_from:
            src_from = I.sub(src_from, env, self.escape, ins.line)
            prev = next((p for p in stages[:s.index] if p.name == src_from.lower()), None)
            if prev is None and src_from.isdigit() and int(src_from) < s.index:
                prev = stages[int(src_from)]
            if prev is not None:
                if not prev.image_id:
                    prev.image_id = self._commit(prev.config).id
                src_id, src_diff_ids = prev.image_id, list(prev.config["rootfs"]["diff_ids"])
            else:
                try:
                    from nsbox.image.registry import ensure_image
                    img = ensure_image(self.store.paths, src_from, "missing")
                except NsboxError:
                    raise InvalidArgument(f"{what} --from={src_from}: no such build stage or image") from None
                src_id, src_diff_ids = img.id, img.layers
            checksum = src_id + ":" + "\0".join(srcs)   # images are immutable: their id is their content
            spec.keep_owner = not chown
        else:
            sources = []
            for x in srcs:
                found = self.ctx.expand(x)
                if not found:
                    raise BuildFailed(f"{what} failed: file not found in build context or excluded by "
                                      f".dockerignore: stat {x}: file does not exist")
                sources.extend(found)
            checksum = self.ctx.checksum(sources)
            if len(sources) == 1 and not os.path.isdir(sources[0].path):
                kind = "file"
        flags = " ".join(f"--{k}={v}" for k, v in sorted(ins.flags.items()))
        created_by = f"/bin/sh -c #(nop) {what} {flags + ' ' if flags else ''}{kind}:" \
                     f"{checksum[:64]} in {full}{'/' if dest_is_dir and full != '/' else ''} "
        key = self.cache.key(s.image_id or "scratch:" + _cfg_digest(s.config), created_by, checksum)
        if self._cached(s, key):
            return
        ctx = self.ctx

        def run(root, src_root):
            c = Context(src_root) if src_root is not None else ctx
            copier.do_copy(root, c, spec, what)
        try:
            diff_id = overlayfs.run_in_overlay(self.store, s.config["rootfs"]["diff_ids"], run, src_diff_ids)
        except InvalidArgument as e:
            raise BuildFailed(str(e)) from None
        self._finish(s, copy.deepcopy(s.config), created_by, diff_id or _empty_layer(self.store), key)

    def _i_add(self, s, ins, stages):
        self._i_copy(s, ins, stages, add=True)

    def _i_run(self, s, ins, stages):
        from nsbox.image.build import runstep
        argv = I.command_form(ins, self._shell(s))
        for f in ins.flags:
            raise err(ins.line, f"RUN --{f} is not supported by nsbox build")
        env_keys = set(I.env_dict(s.config["config"].get("Env") or []))
        args = {k: v for k, v in sorted(s.args.items()) if k not in env_keys}
        text = " ".join(argv) if ins.json is None else _fmt(argv)
        created_by = (f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in args.items()) + " " if args else "") + text
        key = self.cache.key(s.image_id or "scratch:" + _cfg_digest(s.config), created_by)
        if self._cached(s, key):
            return
        if not s.image_id:
            s.image_id = self._commit(s.config).id
        diff_id = runstep.run(self, s, argv, [f"{k}={v}" for k, v in args.items()])
        self._finish(s, copy.deepcopy(s.config), created_by, diff_id, key)

    def engine(self):
        if self._engine is None:
            from nsbox.runtime.engine import Engine
            self._engine = Engine(self.paths)
        return self._engine


def _has_url(ins: Instruction) -> bool:
    words = ins.json if ins.json is not None else ins.rest.split()
    return any("://" in w and w.split("://", 1)[0].lower() in ("http", "https", "git", "ftp") for w in words[:-1])


def _fmt(argv: list[str]) -> str:
    import json
    return json.dumps(argv)


def _cfg_digest(cfg: dict) -> str:
    import hashlib
    import json
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()


def _empty_layer(store) -> str:
    """A COPY that changed nothing still adds a (empty) layer, like docker."""
    import tempfile
    from nsbox.image.leftovers import owned
    d = tempfile.mkdtemp(dir=store.layers.tmp, prefix=owned("build-empty-"))
    try:
        return store.layers.layer_from_dir(d)[0]
    finally:
        os.rmdir(d)
