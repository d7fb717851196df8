"""Image verbs: images, image {ls,inspect,rm,prune,history,tag,import,save,load,bootstrap}, import, tag,
rmi, save, load, history, commit, export. Parsing and formatting only; the work is in nsbox.image."""
from __future__ import annotations

import json
import sys
import time

import click

from nsbox.cli.common import pass_cli, print_table


def _store(cli):
    from nsbox.cli.common import warn
    from nsbox.image.store import ImageStore
    return ImageStore(cli.paths, warn=warn)


from nsbox.runtime.humanize import human_duration, human_size  # noqa: E402  (docker's units)


def _ago(created: str) -> str:
    ts = _parse_time(created)
    return "N/A" if ts is None else human_duration(time.time() - ts) + " ago"


def _parse_time(created: str) -> float | None:
    if not created:
        return None
    from datetime import datetime
    s = created.rstrip("Z")
    if "." in s:
        head, frac = s.split(".", 1)
        frac = "".join(c for c in frac if c.isdigit())[:6]
        s = f"{head}.{frac}" if frac else head
    tz = ""
    for sep in ("+", "-"):
        if sep in s[19:]:
            idx = s.rindex(sep)
            s, tz = s[:idx], s[idx:]
            break
    try:
        from datetime import timezone
        dt = datetime.fromisoformat(s)
        return dt.replace(tzinfo=timezone.utc).timestamp() if not tz else datetime.fromisoformat(s + tz).timestamp()
    except ValueError:
        return None


def _short(image_id: str, no_trunc: bool) -> str:
    return image_id if no_trunc else image_id.split(":", 1)[1][:12]


# ---------------------------------------------------------------- images / image ls
def _rows(cli, all_: bool, repository: str | None, filters: tuple) -> list[tuple[str, str, object]]:
    """(repository, tag, image) rows, newest first, as docker's `images` selects them."""
    import fnmatch
    from nsbox.image import reference
    from nsbox.runtime.errors import InvalidArgument
    st = _store(cli)
    imgs = sorted(st.list(), key=lambda i: (_parse_time(i.created) or 0), reverse=True)
    if not all_:  # docker hides untagged build intermediates unless -a
        from nsbox.image.build.cache import intermediate_ids
        hidden = intermediate_ids(st)
        imgs = [i for i in imgs if i.names or i.id not in hidden]
    want = reference.parse(repository, default_tag=False) if repository else None
    conds = []
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in ("dangling", "reference", "label"):
            raise InvalidArgument(f"invalid filter '{f}'")
        if key == "dangling" and value not in ("true", "false"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'")
        conds.append((key, value))
    rows = []
    for img in imgs:
        labels = (img.config.get("config") or {}).get("Labels") or {}
        for n in img.names or [None]:
            repo, tag = reference.split_familiar(n) if n else ("<none>", "<none>")
            if want is not None:
                r = reference.parse(n) if n else None
                if r is None or r.repository != want.repository or (want.tag is not None and r.tag != want.tag):
                    continue
            ok = True
            for key, value in conds:
                if key == "dangling":
                    ok &= (n is None) == (value == "true")
                elif key == "reference":
                    ok &= n is not None and (fnmatch.fnmatch(f"{repo}:{tag}", value) or fnmatch.fnmatch(repo, value))
                else:
                    k, _, v = value.partition("=")
                    ok &= k in labels and (not v or labels[k] == v)
            if ok:
                rows.append((repo, tag, img))
    return rows


def _list(cli, quiet: bool, no_trunc: bool, all_: bool, repository: str | None = None, filters: tuple = (),
          fmt: str | None = None) -> None:
    rows = _rows(cli, all_, repository, filters)
    if quiet:
        for i in dict.fromkeys(_short(img.id, no_trunc) for _, _, img in rows):
            click.echo(i)
        return
    if fmt:
        import json
        from nsbox.cli.format import IMAGE_HEADERS, render, table_headers
        views = [{"ID": _short(i.id, no_trunc), "Repository": r, "Tag": t, "CreatedSince": _ago(i.created),
                  "CreatedAt": i.created, "Size": human_size(i.size), "Digest": "<none>"} for r, t, i in rows]
        if fmt == "json":
            for v in views:
                click.echo(json.dumps(v))
            return
        if fmt.startswith("table"):
            body = fmt[5:].strip()
            click.echo(table_headers(body, IMAGE_HEADERS))
            fmt = body
        for v in views:
            click.echo(render(fmt, v))
        return
    print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
                [[r, t, _short(i.id, no_trunc), _ago(i.created), human_size(i.size)] for r, t, i in rows])


_list_opts = [
    click.option("-q", "--quiet", is_flag=True, help="Only show image IDs."),
    click.option("--no-trunc", is_flag=True, help="Don't truncate output."),
    click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images)."),
    click.option("-f", "--filter", "filters", multiple=True, help="Filter: dangling=true|false, reference=PATTERN, label=K[=V]."),
    click.option("--format", "fmt", default=None, help="Format output using a Go template or 'json'."),
]


def _with(opts):
    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return deco


@click.command("images")
@_with(_list_opts)
@click.argument("repository", required=False)
@pass_cli
def images(cli, quiet, no_trunc, all_, filters, fmt, repository):
    """List images."""
    _list(cli, quiet, no_trunc, all_, repository, filters, fmt)


@click.group("image")
def image():
    """Manage images."""


@image.command("ls")
@_with(_list_opts)
@pass_cli
def image_ls(cli, quiet, no_trunc, all_, filters, fmt):
    """List images."""
    _list(cli, quiet, no_trunc, all_, None, filters, fmt)


# ---------------------------------------------------------------- inspect
@image.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output using a Go template.")
@click.argument("refs", nargs=-1, required=True)
@pass_cli
def image_inspect(cli, fmt, refs):
    """Display detailed information on one or more images."""
    from nsbox.image import inspect_view
    from nsbox.runtime.errors import NotFound
    st = _store(cli)
    docs, missing = [], []
    for r in refs:
        try:
            docs.append(inspect_view(st, r))
        except NotFound:
            missing.append(r)
    if fmt:
        from nsbox.cli.format import render
        for d in docs:
            click.echo(render(fmt, d))
    else:
        click.echo(json.dumps(docs, indent=4))
    if missing:
        raise NotFound(f"No such image: {missing[0]}")


# ---------------------------------------------------------------- rm / rmi / prune / tag
@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.argument("refs", nargs=-1, required=True)
@pass_cli
def rmi(cli, force, refs):
    """Remove one or more images."""
    from nsbox.runtime.errors import NsboxError, bounded
    st = _store(cli)
    err = None
    for r in refs:
        try:
            for line in st.remove(r, force=force):
                click.echo(line)
        except NsboxError as e:
            click.echo(f"Error response from daemon: {bounded(str(e))}", err=True)
            err = e
    if err:
        raise SystemExit(1)


image.add_command(rmi, "rm")


@image.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_cli
def image_prune(cli, all_, force):
    """Remove unused images."""
    if not force and sys.stdin.isatty():
        what = "all images without at least one container associated to them" if all_ else "all dangling images"
        if not click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?"):
            return
    lines, freed = _store(cli).prune(all=all_)
    if lines:
        click.echo("Deleted Images:")
        for l in lines:
            click.echo(l)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(freed)}")


@click.command("tag")
@click.argument("source")
@click.argument("target")
@pass_cli
def tag(cli, source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    _store(cli).tag(source, target)


image.add_command(tag, "tag")


# ---------------------------------------------------------------- import / history
@click.command("import")
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.argument("source")
@click.argument("ref", required=False)
@pass_cli
def import_(cli, changes, message, source, ref):
    """Import the contents from a tarball to create a filesystem image."""
    st = _store(cli)
    if source == "-":
        img = st.import_tar(sys.stdin.buffer, ref, changes=list(changes), message=message, source="-")
    else:
        from nsbox.runtime.errors import NotFound
        try:
            f = open(source, "rb")
        except FileNotFoundError:
            raise NotFound(f"open {source}: no such file or directory") from None
        with f:
            img = st.import_tar(f, ref, changes=list(changes), message=message, source=source)
    click.echo(img.id)


image.add_command(import_, "import")


@click.command("history")
@click.option("-H", "--human", default=True, type=bool, help="Print sizes and dates in human readable format.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.argument("ref")
@pass_cli
def history(cli, human, no_trunc, quiet, ref):
    """Show the history of an image."""
    rows = _store(cli).history(ref)
    if quiet:
        for r in rows:
            click.echo(r["id"] if r["id"] == "<missing>" else _short(r["id"], no_trunc))
        return
    out = []
    for r in rows:
        by = r["created_by"]
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        out.append([r["id"] if r["id"] == "<missing>" else _short(r["id"], no_trunc),
                    _ago(r["created"]) if human else r["created"], by,
                    human_size(r["size"]) if human else str(r["size"]), r["comment"]])
    print_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], out)


image.add_command(history, "history")


# ---------------------------------------------------------------- save / load
@click.command("save")
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT.")
@click.option("--format", "fmt", type=click.Choice(["docker-archive", "oci-archive"]), default="docker-archive")
@click.argument("refs", nargs=-1, required=True)
@pass_cli
def save(cli, output, fmt, refs):
    """Save one or more images to a tar archive."""
    from nsbox.image import archive
    from nsbox.runtime.errors import InvalidArgument
    st = _store(cli)
    if output:
        import os
        tmp = output + ".nsbox-tmp"
        try:
            with open(tmp, "wb") as f:
                archive.save(st, list(refs), f, fmt)
            os.rename(tmp, output)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    else:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        archive.save(st, list(refs), sys.stdout.buffer, fmt)
        sys.stdout.buffer.flush()


image.add_command(save, "save")


@click.command("load")
@click.option("-i", "--input", "input_", default=None, help="Read from tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@pass_cli
def load(cli, input_, quiet):
    """Load an image from a tar archive or STDIN."""
    from nsbox.image import archive
    st = _store(cli)
    if input_:
        from nsbox.runtime.errors import NotFound
        try:
            f = open(input_, "rb")
        except FileNotFoundError:
            raise NotFound(f"open {input_}: no such file or directory") from None
        with f:
            lines = archive.load(st, f)
    else:
        lines = archive.load(st, sys.stdin.buffer)
    if not quiet:
        for l in lines:
            click.echo(l)


image.add_command(load, "load")


@image.command("bootstrap")
@click.option("--mirror", default="http://deb.debian.org/debian", help="Debian mirror.")
@click.option("--variant", default="minbase")
@click.argument("ref", default="debian:bookworm")
@pass_cli
def bootstrap(cli, mirror, variant, ref):
    """Build a Debian image with debootstrap (SUITE from the tag: debian:bookworm)."""
    from nsbox.image import bootstrap as bs
    img = bs.bootstrap(_store(cli), ref, mirror=mirror, variant=variant, log=lambda s: click.echo(s, err=True))
    click.echo(img.id)


# ---------------------------------------------------------------- commit / export
def _container(cli, ref: str):
    """(id, dir, config) of a container by id, prefix or name."""
    from nsbox.runtime.store import ContainerStore
    rec = ContainerStore(cli.paths).get(ref)
    return rec.id, rec.dir, rec.config()


@click.command("commit")
@click.option("-a", "--author", default="", help="Author.")
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause/--no-pause", default=True, help="Pause container during commit.")
@click.argument("container")
@click.argument("ref", required=False)
@pass_cli
def commit(cli, author, changes, message, pause, container, ref):
    """Create a new image from a container's changes."""
    import os
    from nsbox.runtime.errors import InvalidArgument
    cid, cdir, cfg = _container(cli, container)
    upper = os.path.join(cdir, "upper")
    if not os.path.isdir(upper):
        raise InvalidArgument("commit needs the overlay driver (this container has no upper layer)")
    # TODO(lead): pause/unpause through the engine around the walk when -p (default) and running
    try:
        img = _store(cli).commit_container(cid, upper, list(changes), message, author, image_id=cfg.get("Image"),
                                           ref=ref)
    except OSError as e:
        from nsbox.runtime.fsutil import disk_full, no_space
        if not disk_full(e):
            raise
        raise no_space(e, [cli.paths.images, cli.paths.root]) from None
    click.echo(img.id)


@click.command("export")
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT.")
@click.argument("container")
@pass_cli
def export(cli, output, container):
    """Export a container's filesystem as a tar archive."""
    import os
    from nsbox.image.graphdriver import COPY, OVERLAY, RootfsPlan
    from nsbox.image.store import export_rootfs
    from nsbox.runtime.errors import InvalidArgument
    cid, cdir, cfg = _container(cli, container)
    st = _store(cli)
    if os.path.isdir(os.path.join(cdir, "rootfs")):
        plan = RootfsPlan(COPY, rootfs=os.path.join(cdir, "rootfs"))
    else:
        img = st.get(cfg.get("Image"))
        lowers = [st.layers.ensure_extracted(d) for d in reversed(img.layers)] or [st.layers.empty_dir()]
        upper = os.path.join(cdir, "upper")
        plan = RootfsPlan(OVERLAY, lowers, upper if os.path.isdir(upper) else None, None)
    if output:
        with open(output, "wb") as f:
            export_rootfs(plan, f)
    else:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        export_rootfs(plan, sys.stdout.buffer)
        sys.stdout.buffer.flush()
