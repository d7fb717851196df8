"""cgroups: one interface (base.Cgroup / base.Driver), two drivers (v1.py, v2.py).

    drv = get_driver()                       # v2 iff /sys/fs/cgroup/cgroup.controllers exists
    cg = drv.create("nsbox/<id>", resources) # cg.warnings: knobs this kernel could not honour
    cg.join_self()                           # in the container child, before any fork/exec
"""
from __future__ import annotations

import os

from nsbox.runtime.cgroups.base import Cgroup, Driver
from nsbox.runtime.cgroups.files import CgroupError
from nsbox.runtime.cgroups.resources import (BlockIOResources, CpuResources, DeviceRule, MemoryResources,
                                            PidsResources, Resources, ThrottleDevice, WeightDevice,
                                            default_device_rules)

__all__ = ["get_driver", "Cgroup", "Driver", "CgroupError", "Resources", "MemoryResources", "CpuResources",
           "PidsResources", "BlockIOResources", "WeightDevice", "ThrottleDevice", "DeviceRule",
           "default_device_rules", "is_v2_host"]


def is_v2_host(mount: str = "/sys/fs/cgroup") -> bool:
    return os.path.exists(os.path.join(mount, "cgroup.controllers"))


def get_driver() -> Driver:
    if is_v2_host():
        from nsbox.runtime.cgroups.v2 import V2Driver
        return V2Driver()
    from nsbox.runtime.cgroups.v1 import V1Driver
    return V1Driver()
