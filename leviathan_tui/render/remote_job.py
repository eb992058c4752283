"""The shell a detached job on the build host runs: one place, used by the SSH backend's caller
and the dry-run build host alike (which runs these very scripts in its own directory).

A job lives in a directory: `<name>.sh` runs the command with output in `<name>.log`, its PID in
`<name>.pid`, and, when it ends, its exit code in `<name>.exit`. Both files are written by rename, so a
reader never sees an empty or half-written number.
"""

from __future__ import annotations

import shlex

STOPPED_EXIT = 143  # what a shell reports for SIGTERM, and what a stop records


def job_script(name: str, command: str) -> str:
    return (
        "#!/bin/sh\n"
        'cd "$(dirname "$0")"\n'
        f"echo $$ > {name}.pid.tmp && mv {name}.pid.tmp {name}.pid\n"
        f"rm -f {name}.exit\n"
        f"( {command} ) > {name}.log 2>&1\n"
        f"echo $? > {name}.exit.tmp && mv {name}.exit.tmp {name}.exit\n"
    )


def mkdir_command(directory: str) -> str:
    return f"mkdir -p {shlex.quote(directory)}"


def start_command(directory: str, name: str) -> str:
    """Starts the job detached; its PID file exists when this returns, so a status right after
    never mistakes a starting job for an absent one."""
    d = shlex.quote(directory)
    return (
        f"cd {d} && rm -f {name}.exit && if [ -f {name}.log ]; then mv {name}.log {name}.log.prev; fi && "
        f"{{ setsid nohup sh {name}.sh > /dev/null 2>&1 < /dev/null & "
        f"echo $! > {name}.start.pid && mv {name}.start.pid {name}.pid; }} && echo started"
    )


def status_command(directory: str, name: str) -> str:
    """Prints `done CODE`, `running` or `absent`.

    The exit file is looked for again once the process is found gone: a job that ends between the
    first look and the liveness check has written its code by then, and is done, not absent."""
    d = shlex.quote(directory)
    done = f"[ -f {name}.exit ] && echo done $(cat {name}.exit)"
    return (
        f"cd {d} 2>/dev/null || {{ echo absent; exit 0; }}; "
        f"if {done}; then :; "
        f"elif [ -f {name}.pid ] && kill -0 $(cat {name}.pid) 2>/dev/null; then echo running; "
        f"elif {done}; then :; "
        f"else echo absent; fi"
    )


def stop_command(directory: str, name: str) -> str:
    """Stops a running job and records exit 143. The job leads its own process group (setsid),
    so the whole group is signalled: TERM, up to 5 s to go, then KILL. `kill -TERM -PGID`, not
    `kill -TERM -- -PGID`: dash, Debian's sh, refuses the `--`. A job that has its exit code
    already is not stopped again."""
    d = shlex.quote(directory)
    return (
        f"cd {d} 2>/dev/null || {{ echo absent; exit 0; }}; "
        f"if [ -f {name}.exit ]; then echo absent; "
        f"elif [ -f {name}.pid ] && kill -0 $(cat {name}.pid) 2>/dev/null; then "
        f"group=$(cat {name}.pid); kill -TERM -$group 2>/dev/null || kill -TERM $group; "
        f"tries=0; while kill -0 -$group 2>/dev/null && [ $tries -lt 50 ]; do "
        f"sleep 0.1; tries=$((tries + 1)); done; kill -KILL -$group 2>/dev/null; "
        f"echo {STOPPED_EXIT} > {name}.exit.tmp && mv {name}.exit.tmp {name}.exit; echo stopped; "
        f"else echo absent; fi"
    )
