"""`nsbox build`: flags -> BuildOptions -> image/build's Builder; docker's exit codes.

Exit 1 when a step fails (a RUN exiting non-zero, a COPY source missing), like `docker build`;
125 for nsbox usage errors: bad flags, an unreadable context or Dockerfile, Dockerfile syntax.
"""
from __future__ import annotations

import os
import sys

import click

from nsbox.cli.common import CliContext, pass_cli


def _kv(values: tuple, what: str, from_env: bool = False) -> dict[str, str]:
    from nsbox.runtime.errors import InvalidArgument
    out = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"invalid {what}: {v!r}")
        if not eq:
            if not from_env:
                raise InvalidArgument(f"invalid {what}: {v!r} (expected KEY=VALUE)")
            if k not in os.environ:
                continue        # docker: `--build-arg K` takes K from the environment, if set
            val = os.environ[k]
        out[k] = val
    return out


@click.command()
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag in the 'name:tag' format.")
@click.option("-f", "--file", "dockerfile", default=None, help="Name of the Dockerfile (default: 'PATH/Dockerfile').")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables.")
@click.option("--target", default="", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--network", default="bridge", help="Networking mode for RUN instructions (bridge|host|none; "
              "default bridge: isolated like docker's builds, with outbound access through masquerade).")
@click.option("--rm/--no-rm", "rm_", default=True, hidden=True, help="Remove intermediate containers (always).")
@click.argument("context")
@pass_cli
def build(ctx: CliContext, tags, dockerfile, build_args, target, no_cache, labels, quiet, network, rm_, context):
    """Build an image from a Dockerfile."""
    from nsbox.image.build.executor import BuildFailed, BuildOptions, Builder
    from nsbox.runtime.errors import InvalidArgument
    if context == "-" or "://" in context:
        raise InvalidArgument("nsbox build needs a local context directory")
    if not os.path.isdir(context):
        raise InvalidArgument(f"unable to prepare context: path {context!r} not found")
    context = os.path.abspath(context)
    path = dockerfile or os.path.join(context, "Dockerfile")
    if dockerfile and not os.path.exists(path) and os.path.exists(os.path.join(context, dockerfile)):
        path = os.path.join(context, dockerfile)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        raise InvalidArgument(f"unable to prepare context: unable to evaluate the Dockerfile {path!r}: "
                              f"{e.strerror.lower() if e.strerror else e}") from None
    opts = BuildOptions(context=context, dockerfile=path, tags=list(tags),
                        build_args=_kv(build_args, "build-arg", from_env=True), target=target,
                        no_cache=no_cache, labels=_kv(labels, "label"), quiet=quiet, network=network)
    try:
        image_id = Builder(ctx.paths, opts).build(text)
    except BuildFailed as e:
        sys.stdout.flush()
        click.echo(str(e), err=True)
        sys.exit(1)
    except OSError as e:
        from nsbox.runtime.fsutil import disk_full, no_space
        if not disk_full(e):
            raise
        import tempfile
        raise no_space(e, [ctx.paths.images, ctx.paths.containers, ctx.paths.root,
                           tempfile.gettempdir()]) from None
    if quiet:
        click.echo(image_id)
        return
    click.echo(f"Successfully built {image_id[7:19]}")
    from nsbox.image import reference
    for t in tags:
        click.echo(f"Successfully tagged {reference.familiar(reference.normalize(t))}")
