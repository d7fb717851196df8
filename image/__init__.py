"""nsbox's image store (see store.py) and image verbs' building blocks.

    from nsbox.image.store import ImageStore
    img = ImageStore(paths).ensure_default("busybox")          # resolve(), + embedded busybox on first use
    plan = store.prepare_rootfs(cid, img.id, container_dir)    # RootfsPlan for the container init
"""


def inspect_view(store, ref: str) -> dict:
    from nsbox.image.inspect import inspect_view as view
    return view(store, ref)
