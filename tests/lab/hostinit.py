"""PID-holder ("init") of one lab host. Runs inside the host's network, UTS and mount
namespaces (started by netlab through `ip netns exec NS unshare --uts --mount`).

It makes the host's filesystem private (overlays over the system directories, so scripts
can write anywhere without touching this machine), sets the hostname, then runs sshd as its
child and reaps every orphan of the host (it is a child subreaper), because PID 1 of this
machine does not reap. Control is by signals from netlab: USR1 starts sshd, USR2 stops it,
TERM ends the host.

Standalone on purpose: it runs before the host can see the project's files.
"""
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36
LAB_RUN = "/run/rk2lab"


def sh(*args):
    subprocess.run(args, check=True)


def make_private(cfg):
    root, work, stage = cfg["root"], cfg["work"], cfg["stage"]
    # The lab's Python may live under /root or /tmp, which the host sees fresh: keep
    # read-only views of it at a staging path before those trees are covered.
    rebinds = cfg["python_dirs"]
    for i, path in enumerate(rebinds):
        os.makedirs(f"{stage}/{i}", exist_ok=True)
        sh("mount", "--bind", "-o", "ro", path, f"{stage}/{i}")
    for d in cfg["overlay_dirs"]:
        sh("mount", "-t", "overlay", "overlay",
           "-o", f"lowerdir={d},upperdir={root}{d},workdir={work}{d}", d)
    # The lab's hosts file plays the LAN's DNS. It is rewritten in place by netlab, so
    # this file bind keeps seeing the current content.
    sh("mount", "--bind", cfg["hosts_file"], "/etc/hosts")
    sh("mount", "--bind", cfg["resolv_conf"], "/etc/resolv.conf")
    for d in ("/root", "/run"):
        sh("mount", "--bind", f"{root}{d}", d)
    # Kernel settings outside net.* are shared with this machine: keep them read-only.
    sh("mount", "--bind", "/proc/sys", "/proc/sys")
    sh("mount", "--bind", "/proc/sys/net", "/proc/sys/net")
    sh("mount", "-o", "remount,bind,ro", "/proc/sys")
    sh("mount", "-o", "remount,bind,ro", "/sys")
    private_tmp = f"{root}/tmp"
    for i, path in enumerate(rebinds):
        target = private_tmp + path[len("/tmp"):] if path.startswith("/tmp/") else path
        os.makedirs(target, exist_ok=True)
        sh("mount", "--bind", f"{stage}/{i}", target)
    sh("mount", "--rbind", private_tmp, "/tmp")


def main():
    cfg = json.loads(sys.argv[1])
    make_private(cfg)
    socket.sethostname(cfg["name"])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    watched = {signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM,
               signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)

    def unblock():
        signal.pthread_sigmask(signal.SIG_SETMASK, set())

    sshd_pid = None

    def set_state(text):
        tmp = f"{LAB_RUN}/sshd.state.tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, f"{LAB_RUN}/sshd.state")

    def start_sshd():
        nonlocal sshd_pid
        if sshd_pid is not None:
            return
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        log = open(f"{LAB_RUN}/sshd.log", "ab")
        proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", f"{LAB_RUN}/sshd_config"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/", preexec_fn=unblock)
        log.close()
        sshd_pid = proc.pid
        set_state(f"running {sshd_pid}")

    def stop_sshd():
        if sshd_pid is not None:
            try:
                os.kill(sshd_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    start_sshd()
    print("ready", flush=True)
    while True:
        sig = signal.sigwaitinfo(watched).si_signo
        if sig == signal.SIGCHLD:
            while True:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid == sshd_pid:
                    sshd_pid = None
                    set_state("stopped")
        elif sig == signal.SIGUSR1:
            start_sshd()
        elif sig == signal.SIGUSR2:
            stop_sshd()
        else:
            stop_sshd()
            return


if __name__ == "__main__":
    main()
