"""Stand-in for a user's notebook server in the enforcement tests: it forks workers and
then only waits, as a Jupyter server waits while its kernels compute.

Usage: python3 user_server.py alloc MIB
       python3 user_server.py busy COUNT

`alloc` forks one worker that allocates MIB MiB in 10 MiB steps, writing every byte so
that the pages count towards the cgroup's memory, and then keeps the memory. `busy`
forks COUNT workers that spin on the CPU. The main process never exits by itself, so the
unit stays active for as long as it lives.

Every event is written to standard output (the unit's journal) and appended to the file
`events` in $RUNTIME_DIRECTORY, which the test job reads:
    allocated N        the worker holds N MiB
    holding N          the worker has allocated everything and holds N MiB
    ended PID STATUS   a worker ended; STATUS is "signal N" or "exit N"
"""

from __future__ import annotations

import os
import sys
import time

CHUNK_MIB = 10


def report(event: str) -> None:
    print(event, flush=True)
    directory = os.environ.get("RUNTIME_DIRECTORY")
    if directory:
        with open(os.path.join(directory, "events"), "a") as events:
            events.write(event + "\n")


def allocate(mib: int) -> None:
    chunks = []
    while len(chunks) * CHUNK_MIB < mib:
        # Multiplying a bytes object writes every byte, unlike bytearray(n), whose
        # zeroed pages the kernel maps lazily.
        chunks.append(b"\x01" * (CHUNK_MIB << 20))
        report(f"allocated {len(chunks) * CHUNK_MIB}")
    report(f"holding {len(chunks) * CHUNK_MIB}")
    while True:
        time.sleep(3600)


def spin() -> None:
    while True:
        pass


def fork_worker(work: str, argument: int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            if work == "alloc":
                allocate(argument)
            else:
                spin()
        finally:
            os._exit(1)
    return pid


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}"


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("alloc", "busy"):
        sys.exit("usage: user_server.py alloc MIB | busy COUNT")
    work, argument = sys.argv[1], int(sys.argv[2])

    workers = 1 if work == "alloc" else argument
    for _ in range(workers):
        fork_worker(work, argument)

    # Reap the workers as they end, and stay alive after the last one.
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        report(f"ended {pid} {describe(status)}")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
