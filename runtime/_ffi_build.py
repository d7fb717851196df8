"""Generates runtime/_nsffi.py: cffi out-of-line ABI mode (no compiler needed).

Out-of-line mode keeps the cdef parse (pycparser, ~50 ms) off every start-up;
the generated module is committed. Regenerate with: python -m nsbox.runtime._ffi_build
"""
import os

from cffi import FFI

CDEF = """
int unshare(int flags);
int setns(int fd, int nstype);
int mount(const char *source, const char *target, const char *filesystemtype,
          unsigned long mountflags, const void *data);
int umount2(const char *target, int flags);
long syscall(long number, ...);
int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
int setgroups(size_t size, const unsigned int *list);
struct mount_attr { uint64_t attr_set; uint64_t attr_clr; uint64_t propagation; uint64_t userns_fd; };
struct cap_header { uint32_t version; int pid; };
struct cap_data { uint32_t effective; uint32_t permitted; uint32_t inheritable; };
struct sock_filter { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; };
struct sock_fprog { unsigned short len; struct sock_filter *filter; };
/* libseccomp (libseccomp.so.2), used only to compile profiles: runtime/seccomp_bpf.py */
typedef void *scmp_filter_ctx;
struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_remove(scmp_filter_ctx ctx, uint32_t arch_token);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
uint32_t seccomp_arch_native(void);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                           const struct scmp_arg_cmp *arg_array);
int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
const struct scmp_version *seccomp_version(void);
"""


def build() -> None:
    ffi = FFI()
    ffi.set_source("_nsffi", None)
    ffi.cdef(CDEF)
    here = os.path.dirname(os.path.abspath(__file__))
    ffi.emit_python_code(os.path.join(here, "_nsffi.py"))


if __name__ == "__main__":
    build()
