#!/usr/bin/env python3
"""Samples the state of every thread of a process, for lining stalls up with what each
thread was doing (BENCHMARKS.md, "Stalls").

Usage: thread-states.py PID SECONDS OUT

Every 5 ms it writes one line to OUT: the wall-clock time (unix seconds), the run queue from
/proc/loadavg, then `name:tid:state:wchan` for each thread of PID (state R running, S
sleeping, D uninterruptible, e.g. waiting for the disk). Stops after SECONDS or when the
process exits. Sampling costs a few percent of one core.
"""
import os
import sys
import time


def main() -> None:
    pid, seconds, out_path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    tasks = f"/proc/{pid}/task"
    end = time.time() + seconds
    with open(out_path, "w") as out:
        while time.time() < end:
            now = time.time()
            try:
                tids = os.listdir(tasks)
            except FileNotFoundError:
                break
            parts = []
            for tid in tids:
                try:
                    with open(f"{tasks}/{tid}/stat") as f:
                        stat = f.read()
                    with open(f"{tasks}/{tid}/wchan") as f:
                        wchan = f.read().strip() or "0"
                except OSError:
                    continue
                name = stat[stat.index("(") + 1 : stat.rindex(")")].replace(" ", "_")
                state = stat[stat.rindex(")") + 2]
                parts.append(f"{name}:{tid}:{state}:{wchan}")
            with open("/proc/loadavg") as f:
                runnable = f.read().split()[3]
            out.write(f"{now:.3f} {runnable} {' '.join(sorted(parts))}\n")
            time.sleep(0.005)


if __name__ == "__main__":
    main()
