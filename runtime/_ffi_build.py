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
"""


def build() -> None:
    ffi = FFI()
    ffi.set_source("_nsffi", None)
    ffi.cdef(CDEF)
    here = os.path.dirname(os.path.abspath(__file__))
    ffi.emit_python_code(os.path.join(here, "_nsffi.py"))


if __name__ == "__main__":
    build()
