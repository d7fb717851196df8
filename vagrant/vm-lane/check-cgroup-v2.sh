#!/bin/sh
# check-cgroup-v2.sh: fail loudly unless this machine runs PURE cgroup v2. Run as root (the lane runs
# it in the guest before the tests). Prints what it found; exit 0 = pure v2, 1 = not.
#   - /sys/fs/cgroup is cgroup2 and its cgroup.controllers lists cpu, memory, io and pids
#   - cgroup.subtree_control can enable them (+cpu +memory +io +pids)
#   - no v1 hierarchy: no "cgroup" (v1) entry in /proc/mounts, /proc/cgroups hierarchy column all 0
CG=/sys/fs/cgroup
fail=0
bad() { echo "cgroup-v2 check: FAIL: $*"; fail=1; }
fstype=$(awk -v m="$CG" '$2 == m {print $3}' /proc/mounts | tr '\n' ' ')
echo "cgroup-v2 check: $CG fstype: ${fstype:-none}"
[ "$fstype" = "cgroup2 " ] || bad "$CG is not a single cgroup2 mount"
ctrls=$(cat "$CG/cgroup.controllers" 2>/dev/null)
echo "cgroup-v2 check: root cgroup.controllers: ${ctrls:-<missing>}"
for c in cpu memory io pids; do
    case " $ctrls " in *" $c "*) ;; *) bad "controller $c not available";; esac
done
# only ever write into a real cgroup2 root (never create a file in a tmpfs /sys/fs/cgroup)
if [ "$fstype" = "cgroup2 " ] && [ -f "$CG/cgroup.subtree_control" ]; then
    echo "+cpu +memory +io +pids" > "$CG/cgroup.subtree_control" 2>/dev/null \
        || bad "cannot enable +cpu +memory +io +pids in $CG/cgroup.subtree_control"
fi
sub=$(cat "$CG/cgroup.subtree_control" 2>/dev/null)
echo "cgroup-v2 check: root cgroup.subtree_control: $sub"
for c in cpu memory io pids; do
    case " $sub " in *" $c "*) ;; *) bad "controller $c not enabled in subtree_control";; esac
done
v1=$(awk '$3 == "cgroup" {print $2}' /proc/mounts | tr '\n' ' ')
echo "cgroup-v2 check: v1 mounts: ${v1:-none}"
[ -z "$v1" ] || bad "cgroup v1 hierarchies mounted: $v1"
h=$(awk '!/^#/ && $2 != 0 {print $1 "=" $2}' /proc/cgroups | tr '\n' ' ')
echo "cgroup-v2 check: /proc/cgroups non-zero hierarchies: ${h:-none}"
[ -z "$h" ] || bad "controllers bound to v1 hierarchies: $h"
echo "cgroup-v2 check: cmdline: $(cat /proc/cmdline)"
if [ $fail = 0 ]; then echo "cgroup-v2 check: OK, pure cgroup v2"; else echo "cgroup-v2 check: NOT pure cgroup v2"; fi
exit $fail
