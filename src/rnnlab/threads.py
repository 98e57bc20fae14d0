"""How many threads rnnlab runs: the BLAS's (NumPy's and SciPy's products) and its own kernels'.

Why rnnlab decides this itself: OpenBLAS starts as many threads as the machine has cores, and its
workers spin while they wait. On a CPU that other programs keep busy (a laptop, a shared server,
a CI runner, a second training beside the first) a product split over two threads then waits for
whichever thread the scheduler left behind: the recurrent loops' many small products ran 3-10x
slower with two threads than with one on a 2-core machine at load 6-7 (issue 31).

The decision (``decide``), the first rule that applies:

1. ``--threads N`` (every command; ``configure(N)`` in a script);
2. ``RNNLAB_THREADS=N``;
3. ``OPENBLAS_NUM_THREADS`` (else ``OMP_NUM_THREADS``) set when the process started: a user who
   starts a process so (one thread under ``mpiexec``, ``--seeds``' processes) means it; the BLAS
   is left as it is;
4. the policy: the CPUs this process may use (``available_cpus``: its affinity and its cgroup's
   CPU quota) less those other processes keep busy (``busy_cpus``: the number of other processes
   runnable right now, the median of a few readings; the 1-minute load average where that count
   is missing), scaled to our share of the machine's CPUs, rounded, at least 1.

The product size: OpenBLAS itself runs products below its multithreading threshold (about
m n k < 262,144: a batch-1 step, a small layer's step) on one thread, and rnnlab's kernels split
rows only when each half gets enough of them (``layers.fast.compiled.run_row_halves``, by the shape
alone); the decision here is the upper bound both work under.

The BLAS setting is made through threadpoolctl (the ``fast`` extra), at once, for every BLAS
loaded in the process; without threadpoolctl rnnlab cannot change it after NumPy has loaded, and
the decision says so (``blas``), while the kernels still follow it. ``kernel_threads()`` is what
``layers.fast.compiled.default_threads`` asks (its two-thread row blocks).

It never changes the numbers: the BLAS splits the output among its threads (each element summed
by one thread in the same order) and rnnlab's kernels cut rows by the batch size alone
(``compiled.row_blocks``), so a run gives the same bits on 1 or 2 threads (tested in
tests/test_threads.py with two training processes).

The first caller decides (``current()``; the CLI calls ``configure`` before each command, the
trainer logs the decision once per run and records it in results.json as ``threads``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

ENV_VAR = "RNNLAB_THREADS"
BLAS_ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
RUNNABLE_SAMPLES = 9          # readings of /proc/loadavg's runnable count, 10 ms apart: their median
RUNNABLE_INTERVAL_S = 0.01


@dataclass(frozen=True)
class ThreadDecision:
    """What ``decide`` chose and why (``describe()`` in words, ``as_dict()`` for a JSON record)."""

    threads: int                 # BLAS threads, and the most threads rnnlab's kernels use
    source: str                  # "--threads", RNNLAB_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, "policy"
    cpus: int                    # CPUs available to the process
    busy: float | None = None    # CPUs other processes keep busy (policy only)
    load1: float | None = None   # the 1-minute load average at the decision
    runnable: int | None = None  # other processes runnable at the decision (/proc/loadavg)
    blas: str = "not applied"    # "set by threadpoolctl", "left as started", or why it was not set

    def describe(self) -> str:
        plural = "s" if self.threads != 1 else ""
        if self.source == "policy":
            why = (f"{self.cpus} CPUs available, {self.busy:.1f} busy (load average {self.load1:.2f}, "
                   f"{self.runnable} other processes runnable); --threads N or {ENV_VAR}=N overrides"
                   if self.busy is not None else f"{self.cpus} CPUs available, load unknown")
        else:
            why = f"from {self.source}"
        return f"{self.threads} thread{plural} ({why}); BLAS {self.blas}"

    def as_dict(self) -> dict:
        return asdict(self)


# ---- what the machine offers ----------------------------------------------------------------------


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The CPUs the process's cgroup may use (quota / period), or None without a quota.

    cgroup v2: ``cpu.max`` ("max 100000" or "200000 100000") of the process's group; v1:
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: none)."""
    v2_group, v1_group = "", ""
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            for line in f:
                hierarchy, controllers, path = line.rstrip("\n").split(":", 2)
                if hierarchy == "0":
                    v2_group = path
                elif "cpu" in controllers.split(","):
                    v1_group = path
    except (OSError, ValueError):
        pass
    for folder in (root + v2_group, root):
        text = _read(os.path.join(folder, "cpu.max"))
        if text:
            quota, _, period = text.partition(" ")
            return _ratio(quota, period)
    for folder in (os.path.join(root, "cpu") + v1_group, os.path.join(root, "cpu"), os.path.join(root, "cpu,cpuacct")):
        quota = _read(os.path.join(folder, "cpu.cfs_quota_us"))
        if quota:
            return _ratio(quota, _read(os.path.join(folder, "cpu.cfs_period_us")))
    return None


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return None  # "max": no quota
    return q / p if q > 0 and p > 0 else None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup's quota (rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def runnable_others() -> int | None:
    """Processes runnable right now besides this one (the median of a few readings of
    /proc/loadavg's fourth field, which counts this process too), or None where it is missing."""
    readings = []
    for i in range(RUNNABLE_SAMPLES):
        if i:
            time.sleep(RUNNABLE_INTERVAL_S)
        fields = _read("/proc/loadavg").split()
        if len(fields) < 4 or "/" not in fields[3]:
            return None
        readings.append(int(fields[3].split("/")[0]) - 1)
    return max(0, sorted(readings)[len(readings) // 2])


def busy_cpus(cpus: int) -> tuple:
    """(CPUs of ours other processes keep busy, 1-minute load average, runnable others), each None
    where the system does not say. The runnable count is now; the load average lags a minute
    behind (a job started a second ago is missing from it, and one that ended a second ago, such
    as the command run just before this one, is still in it: two commands run one after the other
    on an idle machine would then run the second on one thread, at half the GEMM speed, as
    measured on 2026-12-07), so it stands in only where the runnable count is missing. Scaled to
    our ``cpus`` out of the machine's."""
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        load1 = None
    runnable = runnable_others()
    busy = runnable if runnable is not None else load1
    if busy is None:
        return None, load1, runnable
    share = cpus / max(cpus, os.cpu_count() or cpus)
    return busy * share, load1, runnable


# ---- the decision ------------------------------------------------------------------------------------


def requested_threads(value, owner: str) -> int:
    """``value`` as a positive thread count, or a ValueError naming ``owner`` (a flag, a variable)."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{owner} must be a positive integer (threads), got {value!r}")
    return int(text)


def decide(requested: int | None = None, environ=None) -> ThreadDecision:
    """The thread count by the rules of the module docstring (nothing is applied here)."""
    environ = os.environ if environ is None else environ
    cpus = available_cpus()
    if requested is not None:
        return ThreadDecision(requested_threads(requested, "--threads"), "--threads", cpus)
    if environ.get(ENV_VAR, "").strip():
        return ThreadDecision(requested_threads(environ[ENV_VAR], ENV_VAR), ENV_VAR, cpus)
    for name in BLAS_ENV_VARS:
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return ThreadDecision(int(value), name, cpus, blas="left as started")
    busy, load1, runnable = busy_cpus(cpus)
    threads = cpus if busy is None else max(1, min(cpus, math.floor(cpus - busy + 0.5)))
    return ThreadDecision(threads, "policy", cpus, None if busy is None else round(busy, 2), load1, runnable)


_current: ThreadDecision | None = None
_controller = None


def apply(decision: ThreadDecision) -> ThreadDecision:
    """Make ``decision`` the one in force: the BLAS set to its thread count (threadpoolctl, unless
    the process was started with its own BLAS setting), the kernels following it. Returns it
    with ``blas`` saying what was done."""
    global _current, _controller
    if decision.blas != "left as started":
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            blas = "unchanged: threadpoolctl is not installed (pip install 'rnnlab[fast]')"
        else:
            if _controller is None:
                _controller = ThreadpoolController()
            if _controller.select(user_api="blas").lib_controllers:
                _controller.limit(limits=decision.threads, user_api="blas")
                blas = "set by threadpoolctl"
            else:
                blas = "unchanged: threadpoolctl found no BLAS"
        decision = ThreadDecision(**{**decision.as_dict(), "blas": blas})
    _current = decision
    return decision


def configure(requested: int | None = None) -> ThreadDecision:
    """Decide (``requested``: an explicit count, as ``--threads``) and apply; the decision in force."""
    return apply(decide(requested))


def current() -> ThreadDecision:
    """The decision in force; the first call decides by the policy and applies it."""
    return _current if _current is not None else configure()


def kernel_threads() -> int:
    """The most threads rnnlab's own kernels use (``layers.fast.compiled.default_threads``)."""
    return (_current or current()).threads
