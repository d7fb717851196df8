/* A static probe for the security tests: each check prints NAME=RET:ERRNO (RET -1 on failure).
 * "watch STOPFILE HOSTDEV SKIP..." watches /proc for host files (see test_security.py). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct clone_args_v0 { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

static void show(const char *name, long ret, int err) { printf("%s=%ld:%d\n", name, ret, ret < 0 ? err : 0); }

static long i386_syscall(long nr, long a, long b) {  /* the i386 ABI from a 64-bit process */
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b) : "memory");
    return r;
}

static void reap(long pid) { if (pid == 0) _exit(0); if (pid > 0) waitpid(pid, NULL, __WALL); }

static int checks(void) {
    long r;
    r = syscall(425 /* io_uring_setup */, 1, NULL); show("io_uring_setup", r, errno);
    r = i386_syscall(425, 1, 0); show("io_uring_setup_i386", r < 0 && r > -4096 ? -1 : r, (int)-r);
    r = syscall(425 | 0x40000000 /* x32 */, 1, NULL); show("io_uring_setup_x32", r, errno);
    r = i386_syscall(20 /* getpid */, 0, 0); show("getpid_i386", r, r < 0 ? (int)-r : 0);
    r = syscall(SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */); show("personality_rie", r, errno);
    r = syscall(SYS_personality, 0xffffffffUL); show("personality_query", r, errno);
    r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0); reap(r); show("clone_newuser", r > 0 ? 0 : r, errno);
    r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); reap(r); show("clone_plain", r > 0 ? 0 : r, errno);
    struct clone_args_v0 ca; memset(&ca, 0, sizeof ca); ca.exit_signal = SIGCHLD;
    r = syscall(435 /* clone3 */, &ca, sizeof ca); reap(r); show("clone3", r > 0 ? 0 : r, errno);
    r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0); show("keyctl", r, errno);
    r = mkdir("/tmp/secprobe-dir", 0755); show("mkdir", r, errno);
    r = syscall(SYS_sethostname, "probe", 5); show("sethostname", r, errno);
    r = syscall(SYS_unshare, CLONE_NEWUSER); show("unshare_user", r, errno);  /* last: it moves us */
    return 0;
}

/* Try to open every /proc/PID/exe and /proc/PID/fd/N but our own; report what resolves to a host
 * file: the host's python (PYDEV:PYINO, what nsbox runs as), or through an fd a regular file or
 * directory on the device of nsbox's state (HOSTDEV) other than those named in SKIP (the
 * bind-mounted /etc files, ourselves). */
static int skipped(struct stat *st, dev_t *devs, ino_t *inos, int n) {
    for (int i = 0; i < n; i++) if (devs[i] == st->st_dev && inos[i] == st->st_ino) return 1;
    return 0;
}

static int watch(int argc, char **argv) {
    const char *stop = argv[2];
    dev_t hostdev = (dev_t)strtoull(argv[3], NULL, 10);
    dev_t pydev = (dev_t)strtoull(argv[4], NULL, 10);
    ino_t pyino = (ino_t)strtoull(argv[5], NULL, 10);
    dev_t devs[16]; ino_t inos[16]; int n = 0;
    struct stat st;
    for (int i = 6; i < argc && n < 15; i++) if (stat(argv[i], &st) == 0) { devs[n] = st.st_dev; inos[n++] = st.st_ino; }
    if (stat("/proc/self/exe", &st) == 0) { devs[n] = st.st_dev; inos[n++] = st.st_ino; }
    char self[32]; snprintf(self, sizeof self, "%d", getpid());
    long scans = 0, opened = 0, found = 0;
    printf("ready\n"); fflush(stdout);
    while (access(stop, F_OK) != 0) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9' || !strcmp(e->d_name, self)) continue;
            char p[600], link[512];
            snprintf(p, sizeof p, "/proc/%s/exe", e->d_name);
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                opened++;
                if (fstat(fd, &st) == 0 && st.st_dev == pydev && st.st_ino == pyino) {
                    ssize_t k = readlink(p, link, sizeof link - 1); link[k > 0 ? k : 0] = 0;
                    printf("HOST exe pid=%s %s\n", e->d_name, link); found++;
                }
                close(fd);
            }
            snprintf(p, sizeof p, "/proc/%s/fd", e->d_name);
            DIR *fds = opendir(p);
            struct dirent *f;
            while (fds && (f = readdir(fds))) {
                if (f->d_name[0] == '.') continue;
                snprintf(p, sizeof p, "/proc/%s/fd/%s", e->d_name, f->d_name);
                fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
                if (fd < 0) continue;
                opened++;
                if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) && st.st_dev == hostdev
                    && !skipped(&st, devs, inos, n)) {
                    ssize_t k = readlink(p, link, sizeof link - 1); link[k > 0 ? k : 0] = 0;
                    printf("HOST fd %s %s\n", p, link); found++;
                }
                close(fd);
            }
            if (fds) closedir(fds);
        }
        if (d) closedir(d);
        scans++;
    }
    printf("scans=%ld opened=%ld found=%ld\n", scans, opened, found);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 5 && !strcmp(argv[1], "watch")) return watch(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "openexe")) {  /* openexe PID: can we open its exe and fds? */
        char p[64]; snprintf(p, sizeof p, "/proc/%s/exe", argv[2]);
        long r = open(p, O_RDONLY); show("open_exe", r, errno);
        snprintf(p, sizeof p, "/proc/%s/fd/0", argv[2]);
        r = open(p, O_RDONLY | O_NONBLOCK | O_NOCTTY); show("open_fd0", r, errno);
        return 0;
    }
    return checks();
}
