#!/usr/bin/env python3
"""
Runs commands alternately and times each run from fork to exit, with what the kernel knows
about the run: its main thread's time on a CPU and its time waiting for one (run-queue delay,
/proc/<pid>/schedstat, read while the child is a zombie: waitid WNOWAIT), and the user/system
CPU time of all its threads (wait4 rusage).

wall - run-queue delay is what the run takes when its main thread never waits for a CPU: the
figure that other work on the machine does not inflate.

stdin:  {"commands": [[argv...], ...], "runs": N, "warmup": N, "cwd": "..."}
stdout: {"runs": [[{"wallMs", "runDelayMs", "onCpuMs", "userMs", "sysMs", "status"}, ...], ...],
         "firstStdout": ["...", ...]}
Order: warm-up runs untimed, then for run i the commands in order, reversed on odd i.
"""
import json
import os
import sys
import tempfile
import time


def run_once(argv, cwd, out_fd):
    os.lseek(out_fd, 0, os.SEEK_SET)
    os.ftruncate(out_fd, 0)
    t0 = time.perf_counter_ns()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_fd, 1)
            os.dup2(out_fd, 2)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    t1 = time.perf_counter_ns()
    with open(f"/proc/{pid}/schedstat") as f:
        on_cpu_ns, run_delay_ns, _ = (int(x) for x in f.read().split())
    _, status, usage = os.wait4(pid, 0)
    return {
        "wallMs": (t1 - t0) / 1e6,
        "runDelayMs": run_delay_ns / 1e6,
        "onCpuMs": on_cpu_ns / 1e6,
        "userMs": usage.ru_utime * 1000,
        "sysMs": usage.ru_stime * 1000,
        "status": os.waitstatus_to_exitcode(status),
    }


def main():
    spec = json.load(sys.stdin)
    commands, runs, warmup, cwd = spec["commands"], spec["runs"], spec.get("warmup", 0), spec.get("cwd", ".")
    out = tempfile.TemporaryFile()
    out_fd = out.fileno()
    first_stdout = []
    for argv in commands:
        result = run_once(argv, cwd, out_fd)
        os.lseek(out_fd, 0, os.SEEK_SET)
        first_stdout.append(os.read(out_fd, 1 << 20).decode("utf-8", "replace"))
        if result["status"] != 0:
            print(json.dumps({"error": f"{' '.join(argv)} exited {result['status']}", "output": first_stdout[-1][-2000:]}))
            return
    for _ in range(max(0, warmup - 1)):
        for argv in commands:
            run_once(argv, cwd, out_fd)
    results = [[] for _ in commands]
    for i in range(runs):
        order = list(range(len(commands)))
        if i % 2:
            order.reverse()
        for k in order:
            results[k].append(run_once(commands[k], cwd, out_fd))
    print(json.dumps({"runs": results, "firstStdout": first_stdout}))


main()
