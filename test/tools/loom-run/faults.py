"""Faults in a running job of loom-run ranks: a rank killed, rank 0 stopped
or killed (with the store served by the launcher, or by rank 0 itself), the
launcher killed, two jobs launched on one rendezvous port at once, and
ranks of one job that run different programs.

    faults.py SCENARIO WORKDIR PROGRAM.loom

Each scenario prints what it checked, one line each, for FileCheck, and the
times it measured (to stderr). Every wait is bounded: a process still there
after its bound is a failure, reported and killed.
"""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

DEADLINE = 2.0  # --deadline of the ranks, in seconds
# Room for a loaded 2-core machine on top of each guarantee.
SLACK = 5.0

scenario, workdir, program = sys.argv[1], sys.argv[2], sys.argv[3]


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def children(pid):
    """Pids whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def state(pid):
    """The process state letter ('R', 'S', 'T', 'Z') or None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(pid):
    return state(pid) not in (None, "Z")


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        return int(env[b"RANK"])
    except (OSError, KeyError, ValueError):
        return None


def wait_running(pids, what):
    """Waits until every rank has spent CPU time in its steps: past start-up
    and the rendezvous, which take a few milliseconds each."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if all(cpu_seconds(p) >= 0.15 for p in pids):
            return
        if not all(alive(p) for p in pids):
            fail(f"{what}: a rank ended before the fault")
        time.sleep(0.05)
    fail(f"{what}: the ranks did not get going within 60 s")


def wait_gone(pids, bound, what):
    end = time.monotonic() + bound
    while time.monotonic() < end:
        if not any(alive(p) for p in pids):
            return
        time.sleep(0.02)
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    fail(f"{what}: ranks {left} still ran {bound:.1f} s later")


def launch(extra_env=None, args=(), model=None):
    env = dict(os.environ, **(extra_env or {}))
    return subprocess.Popen(
        ["loom-run", model or program, "--steps", "100000000", "--deadline",
         str(DEADLINE), "--timeout", "120", "--quiet", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def spawned_job():
    """loom-run --nproc 3 --comm gloo; returns the launcher and rank pids."""
    out = os.path.join(workdir, "out")
    launcher = launch(args=("--nproc", "3", "--comm", "gloo", "--outputs", out))
    end = time.monotonic() + 30
    ranks = {}
    while len(ranks) < 3 and time.monotonic() < end:
        ranks = {rank_of(p): p for p in children(launcher.pid)}
        ranks.pop(None, None)
        time.sleep(0.02)
    if len(ranks) < 3:
        launcher.kill()
        fail("the launcher did not start 3 ranks")
    wait_running(list(ranks.values()), "spawned job")
    return launcher, ranks, out


def finish(process, bound, what):
    try:
        stdout, stderr = process.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        fail(f"{what} still ran {bound:.1f} s after the fault")
    return process.returncode, stderr


def check_exit(code, what):
    if not 0 < code < 128:
        fail(f"{what} exited with {code}, not an error status in 1..127")


def kill_rank():
    launcher, ranks, out = spawned_job()
    start = time.monotonic()
    os.kill(ranks[1], signal.SIGKILL)
    code, stderr = finish(launcher, DEADLINE + 1 + SLACK, "the launcher")
    took = time.monotonic() - start
    wait_gone(ranks.values(), 2, "kill-rank")
    check_exit(code, "the launcher")
    if "rank 1 was ended by signal 9 (Killed)" not in stderr:
        fail("no message names rank 1:\n" + stderr)
    for survivor in (0, 2):
        if not re.search(f"error: rank {survivor}: .*rank 1 \\(world 1\\)", stderr):
            fail(f"rank {survivor} does not name rank 1:\n" + stderr)
    if os.path.exists(out):
        fail("a failed job wrote outputs")
    print(f"kill -9 rank 1: every rank ended, status {code}; rank 1 named by "
          "the launcher and ranks 0 and 2; no outputs")
    print(f"kill-rank: ended {took:.2f} s after the kill", file=sys.stderr)


def stop_rank0():
    launcher, ranks, out = spawned_job()
    start = time.monotonic()
    os.kill(ranks[0], signal.SIGSTOP)
    code, stderr = finish(launcher, DEADLINE + 1 + SLACK, "the launcher")
    took = time.monotonic() - start
    wait_gone(ranks.values(), 2, "stop-rank0")
    check_exit(code, "the launcher")
    for survivor in (1, 2):
        if not re.search(f"error: rank {survivor}: .*rank 0 \\(world 0\\)", stderr):
            fail(f"rank {survivor} does not name rank 0:\n" + stderr)
    if "rank 0 was ended by signal 9 (Killed) while it was stopped" not in stderr:
        fail("the launcher does not name the stopped rank 0:\n" + stderr)
    if took > DEADLINE + 1 + SLACK:
        fail(f"the job ended {took:.2f} s after rank 0 stopped")
    if os.path.exists(out):
        fail("a failed job wrote outputs")
    print(f"SIGSTOP rank 0 (store in the launcher): every rank ended, status "
          f"{code}; ranks 1 and 2 name rank 0; no outputs")
    print(f"stop-rank0: ended {took:.2f} s after the stop (deadline "
          f"{DEADLINE:.0f} s)", file=sys.stderr)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_rank(port, job, rank, world, args=(), model=None):
    """Rank `rank` of `world` launched from the environment, as mpirun or a
    script would: rank 0 serves the store at 127.0.0.1:port."""
    env = {"RANK": str(rank), "WORLD_SIZE": str(world),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "LOOM_JOB_ID": job, "LOOM_JOB_TOKEN": job + "-secret"}
    return launch(env, args, model)


def env_job(port, job, world, args=()):
    return [env_rank(port, job, rank, world, args) for rank in range(world)]


def stop_rank0_serving_the_store():
    ranks = env_job(free_port(), "stall", 3)
    wait_running([r.pid for r in ranks], "environment job")
    start = time.monotonic()
    os.kill(ranks[0].pid, signal.SIGSTOP)
    for rank in (1, 2):
        code, stderr = finish(ranks[rank], DEADLINE + 1 + SLACK, f"rank {rank}")
        check_exit(code, f"rank {rank}")
        if "world rank 0, which serves it, has stalled or exited" not in stderr \
                and "rank 0 (world 0)" not in stderr:
            fail(f"rank {rank} does not name rank 0:\n" + stderr)
    took = time.monotonic() - start
    # The stopped rank is its launcher's to end (mpirun, srun, a script).
    ranks[0].kill()
    ranks[0].communicate()
    if took > DEADLINE + 1 + SLACK:
        fail(f"ranks 1 and 2 ended {took:.2f} s after rank 0 stopped")
    print("SIGSTOP rank 0 (store in rank 0): ranks 1 and 2 ended with an "
          "error naming rank 0")
    print(f"stop-rank0-store: ended {took:.2f} s after the stop (deadline "
          f"{DEADLINE:.0f} s)", file=sys.stderr)


def kill_rank0_serving_the_store():
    ranks = env_job(free_port(), "dead", 3)
    wait_running([r.pid for r in ranks], "environment job")
    start = time.monotonic()
    os.kill(ranks[0].pid, signal.SIGKILL)
    ranks[0].communicate()
    for rank in (1, 2):
        code, stderr = finish(ranks[rank], DEADLINE + 1 + SLACK, f"rank {rank}")
        check_exit(code, f"rank {rank}")
        if "world rank 0, which serves it, has stalled or exited" not in stderr \
                and "rank 0 (world 0)" not in stderr:
            fail(f"rank {rank} does not name rank 0:\n" + stderr)
    took = time.monotonic() - start
    print("kill -9 rank 0 (store in rank 0): ranks 1 and 2 ended with an "
          "error naming rank 0")
    print(f"kill-rank0-store: ended {took:.2f} s after the kill",
          file=sys.stderr)


def kill_launcher():
    for sig in (signal.SIGKILL, signal.SIGTERM):
        launcher, ranks, _ = spawned_job()
        start = time.monotonic()
        os.kill(launcher.pid, sig)
        code, stderr = finish(launcher, 5, "the launcher")
        wait_gone(ranks.values(), 5, f"kill -{sig.name} launcher")
        took = time.monotonic() - start
        if code != -sig:
            fail(f"the launcher ended with {code} after {sig.name}")
        if sig == signal.SIGTERM and "interrupted by signal 15" not in stderr:
            fail("the launcher does not say it was interrupted:\n" + stderr)
        print(f"{sig.name} to the launcher: its 3 ranks ended")
        print(f"kill-launcher {sig.name}: ranks gone {took:.2f} s later",
              file=sys.stderr)


def two_jobs():
    """Jobs a and b, launched at once on one port, each of 2 ranks with its
    own inputs: a job either runs alone with its own inputs, or fails with
    a message and leaves its outputs alone."""
    model = program  # gather-sum: ids and table in, rows summed over ranks
    rng = np.random.default_rng(3)
    expected = {}
    for job in ("a", "b"):
        table = rng.standard_normal((8, 4)).astype(np.float32)
        total = np.zeros((4, 4), np.float32)
        for rank in range(2):
            d = os.path.join(workdir, job, "in", f"rank{rank}")
            os.makedirs(d, exist_ok=True)
            ids = rng.integers(0, 8, 4).astype(np.int32)
            np.save(os.path.join(d, "ids.npy"), ids)
            total += table[ids]
        np.save(os.path.join(workdir, job, "in", "table.npy"), table)
        expected[job] = total
    succeeded = 0
    for trial in range(3):
        port = free_port()
        jobs = {}
        for job in ("a", "b"):
            out = os.path.join(workdir, job, f"out{trial}")
            jobs[job] = (env_job(port, job, 2, args=(
                "--inputs", os.path.join(workdir, job, "in"), "--outputs", out,
                "--steps", "300")), out)
        outcome = []
        for job, (ranks, out) in jobs.items():
            codes, errors = [], ""
            for rank, process in enumerate(ranks):
                code, stderr = finish(process, 60, f"job {job} rank {rank}")
                codes.append(code)
                errors += stderr
            if codes == [0, 0]:
                got = np.load(os.path.join(out, "sum.npy"))
                if not np.allclose(got, expected[job], rtol=1e-5, atol=1e-5):
                    fail(f"trial {trial}: job {job} summed another job's rows")
                succeeded += 1
                outcome.append(f"{job} ran")
                continue
            outcome.append(f"{job} failed ({errors.strip().splitlines()[0]})")
            for code in codes:
                check_exit(code, f"trial {trial}: a rank of job {job}")
            if os.path.exists(out):
                fail(f"trial {trial}: failed job {job} wrote outputs")
            if not re.search("another job|MASTER_PORT|refused", errors):
                fail(f"trial {trial}: job {job} failed without saying why:\n"
                     + errors)
        print(f"two jobs on one port, trial {trial}: " + "; ".join(outcome),
              file=sys.stderr)
    if succeeded < 3:
        fail(f"only {succeeded} of 6 jobs succeeded in 3 trials")
    print("two jobs on one port, 3 trials: no job ran with the other's ranks; "
          "a job that failed said why and wrote nothing")


def mismatched_programs():
    """Two ranks of one job that run different programs are refused."""
    port = free_port()
    ranks = [env_rank(port, "mixed", 0, 2, ("--steps", "1")),
             env_rank(port, "mixed", 1, 2, ("--steps", "1"), sys.argv[4])]
    for rank, process in enumerate(ranks):
        code, stderr = finish(process, DEADLINE + SLACK, f"rank {rank}")
        check_exit(code, f"rank {rank}")
        if f"world rank {1 - rank} (pid " not in stderr or \
                "runs another program" not in stderr:
            fail(f"rank {rank} does not name the other program:\n" + stderr)
    print("ranks of one job with different programs: both refused, naming "
          "each other")


{"kill-rank": kill_rank, "kill-rank0-store": kill_rank0_serving_the_store,
 "stop-rank0": stop_rank0,
 "stop-rank0-store": stop_rank0_serving_the_store,
 "kill-launcher": kill_launcher, "two-jobs": two_jobs,
 "mismatched-programs": mismatched_programs}[scenario]()
