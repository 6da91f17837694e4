"""Isolation layers: set up once in the zygote, applied in every forked child.

Layers and where they live:
  zygote, once:   `net_namespace` (empty network namespace: no interface but a down loopback),
                  `mount_namespace` (private mounts, a size-capped tmpfs under the scratch root).
  child, per run: `rlimits` (CPU, address space, file size, open files, processes, core),
                  `drop_capabilities` (root keeps uid 0 for stdlib reads but loses every cap),
                  `landlock_fs` (read the interpreter's files, write only the fresh scratch dir),
                  `landlock_net` (no TCP bind/connect, ABI >= 4),
                  `landlock_scope` (no signals or abstract Unix sockets outside, ABI >= 6),
                  `seccomp` (no fork/clone/exec, no signals to other pids, no sockets, no
                  ptrace/mount/namespaces/kernel-admin calls, no raising rlimits).
  always on:      `wall_clock_kill`, `scratch_dir`, `clean_env`, `stdin_devnull`,
                  `output_cap`, `runtime_bans` (enforced by the zygote and `child.py`).

Each layer is probed at start-up by a probe child; a layer that is unavailable (for example the
namespaces for a normal user where unprivileged user namespaces are blocked) is reported missing
and the rest still apply. A layer reported active that then fails to apply in a child makes the
run fail closed.

Seccomp: the filter is generated once, in the parent, by libseccomp (through the `pyseccomp`
binding) with a placeholder for the child's pid, exported as BPF, and in each child the pid is
patched in and the program loaded with one prctl. Loading through libseccomp in every child
costs about 1 ms more per run here (it regenerates the BPF). Landlock is called through ctypes:
the `landlock` binding only knows the file-system half of the ABI (no network, no scopes).

Stdlib only: this module runs inside the zygote (`seccomp_template` runs in the parent).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import struct

LAYER_NAMES = (
    "wall_clock_kill",
    "rlimits",
    "seccomp",
    "landlock_fs",
    "landlock_net",
    "landlock_scope",
    "net_namespace",
    "mount_namespace",
    "drop_capabilities",
    "scratch_dir",
    "clean_env",
    "stdin_devnull",
    "output_cap",
    "runtime_bans",
)
# Layers the caller may switch off (to simulate a host without them); the others are the
# executor's own mechanics.
OPTIONAL_LAYERS = (
    "seccomp",
    "landlock_fs",
    "landlock_net",
    "landlock_scope",
    "net_namespace",
    "mount_namespace",
    "drop_capabilities",
)

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP = 1, 38, 22
_SECCOMP_MODE_FILTER = 2
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1, 2, 4, 8
_LL_REFER, _LL_TRUNCATE, _LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_LL_NET_BIND_TCP, _LL_NET_CONNECT_TCP = 1, 2
_LL_SCOPE_ABSTRACT_UNIX, _LL_SCOPE_SIGNAL = 1, 2
_CAP_VERSION_3 = 0x20080522
_PID_PLACEHOLDER = 0x3EADBEE7  # a value no syscall number or flag uses

# Denied with EPERM whatever their arguments.
_SECCOMP_DENY = (
    "fork vfork clone execve execveat ptrace process_vm_readv process_vm_writev "
    "process_madvise process_mrelease pidfd_open pidfd_send_signal pidfd_getfd kcmp "
    "socket socketpair io_uring_setup io_uring_enter io_uring_register "
    "mount umount2 pivot_root chroot setns unshare mount_setattr move_mount open_tree "
    "fsopen fsconfig fsmount fspick reboot kexec_load kexec_file_load init_module "
    "finit_module delete_module swapon swapoff sethostname setdomainname acct bpf "
    "perf_event_open userfaultfd keyctl add_key request_key settimeofday clock_settime "
    "clock_adjtime adjtimex iopl ioperm quotactl quotactl_fd open_by_handle_at "
    "name_to_handle_at fanotify_init mknod mknodat personality syslog vhangup "
    "setpriority sched_setscheduler sched_setparam sched_setattr sched_setaffinity "
    "ioprio_set setrlimit setuid setgid setreuid setregid setresuid setresgid setgroups "
    "setfsuid setfsgid capset"
).split()
# Denied unless the first argument is the child's own pid (abort() signals itself).
_SECCOMP_OWN_PID_ONLY = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
# Resolved here, in the zygote, so that no child pays for the symbol lookup (each first
# attribute access on a CDLL costs a dlsym and a new function object, per child otherwise).
_libc.capset.restype = ctypes.c_int


def _syscall(nr: int, *args: object) -> int:
    return _libc.syscall(ctypes.c_long(nr), *args)


class LayerError(OSError):
    """A layer could not be applied."""


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise LayerError(err, f"{what}: {os.strerror(err)}")
    return rc


def _prctl(option: int, arg2: object = 0) -> None:
    _check(_libc.prctl(option, arg2, 0, 0, 0), f"prctl({option})")


def set_parent_death_signal(signum: int) -> None:
    """Asks the kernel to send `signum` to this process when its parent dies."""
    _prctl(_PR_SET_PDEATHSIG, signum)


# --------------------------------------------------------------------------- zygote, once


def enter_namespaces(scratch_root: str, want_net: bool, want_mount: bool, tmpfs_mb: int) -> dict:
    """Moves the zygote into fresh network/mount namespaces; returns which it got.

    As root plain `unshare` works; a normal user may still get them inside a new user namespace
    where the distribution allows it. A mount namespace puts a tmpfs of `tmpfs_mb` on the
    scratch root, so scratch files can fill neither the disk nor anything the host sees.
    """
    got = {"net_namespace": False, "mount_namespace": False}
    flags = (_CLONE_NEWNET if want_net else 0) | (_CLONE_NEWNS if want_mount else 0)
    if not flags:
        return got
    if _libc.unshare(flags) != 0:
        uid, gid = os.getuid(), os.getgid()
        if _libc.unshare(flags | _CLONE_NEWUSER) != 0:
            return got
        # A new user namespace starts with no ids mapped: files could not be created (EOVERFLOW)
        # and the probe would fail. Map our own ids onto themselves (we stay the same user;
        # the capabilities we hold in the namespace are dropped by every child).
        try:
            _map_own_ids(uid, gid)
        except OSError as e:
            raise LayerError(
                e.errno,
                f"mapping uid {uid} / gid {gid} into the new user namespace failed ({e}); "
                "start the pool with disable_layers=('net_namespace', 'mount_namespace')",
            ) from e
    got["net_namespace"] = want_net
    if want_mount:
        rc = _libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
        opts = f"size={tmpfs_mb}m,mode=0700".encode()
        flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        if rc == 0 and _libc.mount(b"tmpfs", scratch_root.encode(), b"tmpfs", flags, opts) == 0:
            got["mount_namespace"] = True
    return got


def _map_own_ids(uid: int, gid: int) -> None:
    for path, text in (
        ("/proc/self/uid_map", f"{uid} {uid} 1"),
        ("/proc/self/setgroups", "deny"),  # required before an unprivileged gid_map
        ("/proc/self/gid_map", f"{gid} {gid} 1"),
    ):
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            continue  # /proc/self/setgroups on kernels before 3.19
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable."""
    rc = _libc.syscall(
        ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    return max(int(rc), 0)


def seccomp_template() -> tuple[bytes, list[int]] | None:
    """The child filter's BPF program with a placeholder pid and the placeholder's offsets.

    Built in the parent (the zygote never loads libseccomp); None when libseccomp or its
    binding is unavailable.
    """
    try:
        import pyseccomp as sc

        filt = sc.SyscallFilter(sc.ALLOW)
        try:
            # A binary tree over syscall numbers instead of one long chain of comparisons:
            # the kernel emulates the filter for every syscall number when it is attached (to
            # cache the always-allowed ones), so a chain costs each child ~0.1 ms more.
            filt.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
        except (OSError, ValueError, RuntimeError):
            pass  # libseccomp < 2.5: the linear filter is just as strict
        for name in _SECCOMP_DENY:
            try:
                filt.add_rule(sc.ERRNO(errno.EPERM), name)
            except (OSError, ValueError, RuntimeError):
                pass  # not a syscall on this architecture
        # glibc falls back from clone3 to clone on ENOSYS, then gets EPERM there.
        filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        for name in _SECCOMP_OWN_PID_ONLY:
            filt.add_rule(sc.ERRNO(errno.EPERM), name, sc.Arg(0, sc.NE, _PID_PLACEHOLDER))
        # getrlimit goes through prlimit64 with no new limit; setting one (or another
        # process's) is refused.
        filt.add_rule(sc.ERRNO(errno.EPERM), "prlimit64", sc.Arg(0, sc.NE, 0))
        filt.add_rule(sc.ERRNO(errno.EPERM), "prlimit64", sc.Arg(2, sc.NE, 0))
        read_fd, write_fd = os.pipe()
        with os.fdopen(write_fd, "wb") as w:
            filt.export_bpf(w)
        with os.fdopen(read_fd, "rb") as r:
            program = r.read()
    except Exception:
        return None
    placeholder = _pid_bytes(_PID_PLACEHOLDER)
    offsets = [i + 4 for i in range(0, len(program), 8) if program[i + 4 : i + 8] == placeholder]
    return (program, offsets) if offsets else None


def _pid_bytes(pid: int) -> bytes:
    return struct.pack("<I", pid)


# --------------------------------------------------------------------------- child, per run


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def apply_rlimits(cpu_s: int, memory_mb: int, file_mb: int, open_files: int) -> None:
    """CPU seconds (SIGXCPU then SIGKILL), address space, file size, fds, no forks, no core."""
    mb = 1 << 20
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * mb, memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * mb, file_mb * mb))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # not enforced for root; seccomp is


# Built once (all zero: no capability); a child passes them to capset as they are.
_CAP_HEADER = _CapHeader(_CAP_VERSION_3, 0)
_CAP_NONE = (_CapData * 2)()


def drop_capabilities() -> None:
    """Clears every capability set (effective, permitted, inheritable; ambient follows)."""
    _check(_libc.capset(ctypes.byref(_CAP_HEADER), _CAP_NONE), "capset")


def set_no_new_privs() -> None:
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def landlock_read_rules(paths: list[str]) -> list[bytes]:
    """Packed read-only rules for `paths` (O_PATH fds the zygote keeps open for its life)."""
    rules = []
    kept: list[str] = []
    for path in sorted({os.path.realpath(p) for p in paths}):
        if not os.path.exists(path) or any(path.startswith(k + "/") for k in kept):
            continue
        kept.append(path)
        rights = _LL_READ_FILE | (_LL_READ_DIR if os.path.isdir(path) else 0)
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        rules.append(struct.pack("<Qi", rights, fd))
    return rules


def apply_landlock(
    abi: int, read_rules: list[bytes], scratch: str, fs: bool, net: bool, scope: bool
) -> None:
    """Restricts this process: reads as `read_rules` allow, anything under `scratch` only."""
    handled_fs = (1 << 13) - 1
    handled_fs |= (_LL_REFER if abi >= 2 else 0) | (_LL_TRUNCATE if abi >= 3 else 0)
    handled_fs |= _LL_IOCTL_DEV if abi >= 5 else 0
    handled_net = _LL_NET_BIND_TCP | _LL_NET_CONNECT_TCP if net and abi >= 4 else 0
    scoped = _LL_SCOPE_ABSTRACT_UNIX | _LL_SCOPE_SIGNAL if scope and abi >= 6 else 0
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = struct.pack("<QQQ", handled_fs if fs else 0, handled_net, scoped)[:size]
    syscall = _syscall
    ruleset = _check(
        syscall(_SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(size), 0),
        "landlock_create_ruleset",
    )
    try:
        if fs:
            scratch_fd = os.open(scratch, os.O_PATH | os.O_CLOEXEC)
            try:
                own = struct.pack("<Qi", handled_fs, scratch_fd)
                for rule in (*read_rules, own):
                    _check(
                        syscall(
                            _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, rule, 0
                        ),
                        "landlock_add_rule",
                    )
            finally:
                os.close(scratch_fd)
        set_no_new_privs()
        _check(syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


class SeccompProgram:
    """The BPF program in a buffer of its own, built once in the zygote.

    A child patches its pid into its (copy-on-write) copy of the buffer and loads it: no
    allocation, no ctypes type built per run.
    """

    def __init__(self, template: bytes, offsets: list[int]):
        self.program = bytearray(template)
        self.offsets = list(offsets)
        self._buffer = (ctypes.c_char * len(self.program)).from_buffer(self.program)
        self.fprog = _SockFprog(len(self.program) // 8, ctypes.addressof(self._buffer))
        self.fprog_ref = ctypes.byref(self.fprog)


def apply_seccomp(prepared: SeccompProgram, pid: int) -> None:
    """Loads the prepared filter with this child's pid patched in at its offsets."""
    program, own = prepared.program, _pid_bytes(pid)
    for offset in prepared.offsets:
        program[offset : offset + 4] = own
    set_no_new_privs()
    _check(
        _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, prepared.fprog_ref, 0, 0),
        "seccomp",
    )
