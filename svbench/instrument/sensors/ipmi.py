"""Whole-node power from the BMC over IPMI DCMI, read with ipmitool or FreeIPMI.

ipmitool (``ipmitool [args] dcmi power reading``; format from ipmitool ``lib/ipmi_dcmi.c``)::

        Instantaneous power reading:                   251 Watts
        Minimum during sampling period:                 66 Watts
        ...
        Power reading state is:                   activated

FreeIPMI (``ipmi-dcmi [args] --get-system-power-statistics``; format from ``ipmi-dcmi/ipmi-dcmi.c``)::

    Current Power                        : 251 Watts
    ...
    Power Measurement                    : Active

The figure is whole watts at the wall/PSU side, refreshed about once a second at best, and some GPU
servers leave the GPUs out. Calls are slow and may hang: each try has a timeout, so ``read()`` takes at
most ``(retries + 1) × (timeout_s + 2 s)`` (the seconds to end a stuck tool).

ipmitool is kept running as one ``ipmitool [args] shell`` (its own command loop, not a system shell):
a reading is one line written to it and its output read back up to the next ``ipmitool> `` prompt.
Measured with ipmitool 1.8.19 and a LAN BMC (``bench/ipmitool.py``), a process per reading costs
~0.9 ms of the sidecar's CPU and ~21 ms of the tool's (start-up and a LAN login each time), the shell
~0.2 ms of each. When the shell cannot start (ipmitool built without readline, ...) the sensor runs one
process per reading instead, and says so in its metadata; FreeIPMI has no shell and always does.

The BMC password never reaches an argument list (``ps`` shows every user the argv of every process):
``password_file`` passes ipmitool ``-f FILE`` (the file holds the password), ``password_env: VAR`` passes
``-E`` with the value of ``VAR`` as ``IPMI_PASSWORD`` in the tool's environment only. A ``-P`` in
``extra_args`` is refused. Other credentials passed in ``extra_args`` (``-H/-U/-k/-y`` for ipmitool,
``-h/-u/-k`` and their long forms for FreeIPMI) never appear in error messages, metadata or logs.

Every answer is read with a bound (``MAX_ANSWER`` bytes): a tool that floods its output is a failed
reading, not a sidecar that grows without end; undecodable bytes are a failed reading too, retried.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

from svbench.instrument.config import SECRET_ARGS_MESSAGE, IpmiConfig, ipmi_tool, is_secret_arg
from svbench.instrument.sensors.base import Reading, SensorConfigError, SensorUnavailable

MAX_ANSWER = 64 * 1024  # bytes: a DCMI reading is ~300; anything past this is a broken or flooding tool

_SECRET_FLAGS = {
    "ipmitool": ("-H", "-U", "-P", "-k", "-y", "-f"),
    "freeipmi": ("-h", "-u", "-p", "-k", "--hostname", "--username", "--password", "--k-g"),
}
_IPMITOOL_POWER = re.compile(r"Instantaneous power reading:\s*(\d+)\s*Watts", re.IGNORECASE)
_IPMITOOL_STATE = re.compile(r"Power reading state is:\s*(\w+)", re.IGNORECASE)
_FREEIPMI_POWER = re.compile(r"^Current Power\s*:\s*(\d+)\s*Watts", re.IGNORECASE | re.MULTILINE)
_FREEIPMI_STATE = re.compile(r"^Power Measurement\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_NOT_SUPPORTED = re.compile(r"DCMI request failed|invalid command|not supported|not active", re.IGNORECASE)
READING_LINE = "dcmi power reading"
# what a command that failed inside the shell prints (where one-shot ipmitool would exit non-zero)
_COMMAND_FAILED = re.compile(r"error|unable|could not|failed|invalid", re.IGNORECASE)
PROMPT = b"ipmitool> "
# No terminal escapes from readline, and its settings from our file instead of the user's (whose key
# bindings could change what it echoes): no history, which would grow by a line per reading otherwise
# (measured: +10.8 MB over 20 000 commands of 500 characters with the default, nothing with this file).
SHELL_ENV = {"TERM": "dumb", "INPUTRC": str(Path(__file__).with_name("ipmitool.inputrc"))}


class IpmiError(RuntimeError):
    """One failed DCMI reading; ``kind``: ``timeout``, ``exit``, ``parse`` or ``run``. Message is redacted."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def secret_values(args: list[str], tool: str) -> list[str]:
    """The values of credential/host options in ``args`` (``-U x``, ``-Ux``, ``--username=x``)."""
    flags = _SECRET_FLAGS[tool]
    secrets = []
    for i, arg in enumerate(args):
        for flag in flags:
            if arg == flag and i + 1 < len(args):
                secrets.append(args[i + 1])
            elif flag.startswith("--") and arg.startswith(flag + "="):
                secrets.append(arg[len(flag) + 1 :])
            elif not flag.startswith("--") and arg.startswith(flag) and len(arg) > 2 and not arg.startswith("--"):
                secrets.append(arg[2:])
    return [s for s in secrets if s]


def redact(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: one secret may contain another
        text = text.replace(secret, "***")
    return text


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class IpmitoolShell:
    """One long-lived ``ipmitool [args] shell`` answering command lines.

    On pipes, ipmitool's shell prints its prompt, echoes each line it reads, writes the command's
    output (errors included: stderr is the same pipe) and prompts again, so a command's answer is
    everything up to the next prompt. The shell stays in the caller's process group: the monitor
    clears the sidecar's group when the sidecar is gone, so a killed sidecar leaves no shell behind
    (on a LAN interface ipmitool 1.8.19 keeps running, busy, once its input is closed).
    """

    def __init__(self, argv: list[str], env: dict | None = None) -> None:
        self.argv = argv
        self.env = env
        self._proc: subprocess.Popen | None = None
        self._poll = select.poll()

    @property
    def running(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout_s: float) -> None:
        """Start the shell and wait for its first prompt; IpmiError if it ends or stays silent."""
        self._start(time.monotonic() + timeout_s, timeout_s)

    def _start(self, deadline: float, timeout_s: float) -> None:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=(self.env or os.environ) | SHELL_ENV)
        except OSError as exc:
            raise IpmiError("run", f"cannot run {os.path.basename(self.argv[0])}: {exc.strerror}") from None
        self._proc = proc
        self._poll = select.poll()
        self._poll.register(proc.stdout.fileno(), select.POLLIN)
        self._until_prompt(proc, deadline, timeout_s)

    def command(self, line: str, timeout_s: float) -> str:
        """The output of one command line (without its echo) within ``timeout_s``, starting the shell
        first if it is not running (a shell that died or was killed at a timeout)."""
        deadline = time.monotonic() + timeout_s
        if self._proc is None:
            self._start(deadline, timeout_s)
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            os.write(proc.stdin.fileno(), (line + "\n").encode())
        except OSError:  # the shell is gone (broken pipe): the read below reports how it ended
            pass
        text = self._until_prompt(proc, deadline, timeout_s, echo=line)
        first, _, rest = text.partition("\n")
        return rest if first.strip() == line else text

    def _until_prompt(self, proc: subprocess.Popen, deadline: float, timeout_s: float, echo: str = "") -> str:
        fd = proc.stdout.fileno()
        buf = bytearray()
        while not buf.endswith(PROMPT):
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop(graceful=False)
                raise IpmiError("timeout", f"no answer within {timeout_s:g} s")
            if not self._poll.poll(left * 1000):
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:  # the shell ended: what it said last says why
                self.stop(graceful=False)
                said = [ln.strip() for ln in buf.decode(errors="replace").replace(PROMPT.decode(), "\n").splitlines()]
                detail = next((ln for ln in said if ln and ln != echo), "")
                raise IpmiError("exit", f"ipmitool shell ended (exit status {proc.returncode})"
                                        + (f": {detail[:200]}" if detail else ""))
            buf += chunk
            if len(buf) > MAX_ANSWER:
                self.stop(graceful=False)
                raise IpmiError("parse", f"answer longer than {MAX_ANSWER // 1024} KiB: not a DCMI reading")
        return _decode(bytes(buf[: -len(PROMPT)]))

    def stop(self, graceful: bool = True) -> None:
        """End the shell: ``exit`` and a second to go when ``graceful``, then SIGKILL."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if graceful and proc.poll() is None:
            try:
                os.write(proc.stdin.fileno(), b"exit\n")
                proc.wait(timeout=1.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass  # stuck in the kernel (a hung IPMI driver): not waited for; the monitor clears the group
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _decode(data: bytes) -> str:
    """The tool's answer as text; bytes that are not UTF-8 make a failed reading (retried), not a crash."""
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise IpmiError("parse", f"undecodable output (byte {exc.start})") from None


def run_bounded(argv: list[str], timeout_s: float, env: dict | None = None,
                limit: int = MAX_ANSWER) -> tuple[int, bytes, bytes]:
    """Run ``argv``; its exit status, stdout and stderr, each at most ``limit`` bytes. IpmiError on a
    timeout or a flood (the process is killed). The process stays in the caller's process group, so that
    whatever kills the sidecar's group also ends a hung tool."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env)
    except OSError as exc:  # not executable, removed since open(), ...
        raise IpmiError("run", f"cannot run {os.path.basename(argv[0])}: {exc.strerror}") from None
    _IN_FLIGHT.add(proc)
    try:
        bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        poll = select.poll()
        for fd in bufs:
            poll.register(fd, select.POLLIN)
        open_fds = set(bufs)
        deadline = time.monotonic() + timeout_s
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise IpmiError("timeout", f"no answer within {timeout_s:g} s")
            for fd, _ in poll.poll(left * 1000):
                chunk = os.read(fd, 65536)
                if not chunk:
                    poll.unregister(fd)
                    open_fds.discard(fd)
                    continue
                bufs[fd] += chunk
                if len(bufs[fd]) > limit:
                    raise IpmiError("parse", f"output longer than {limit // 1024} KiB: not a DCMI reading")
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            raise IpmiError("timeout", f"no answer within {timeout_s:g} s") from None
        return proc.returncode, bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()])
    finally:
        _end(proc)


_IN_FLIGHT: set[subprocess.Popen] = set()  # per-reading tools running now: close() ends them


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass  # stuck in the kernel (a hung IPMI driver): the monitor clears the sidecar's group
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    _IN_FLIGHT.discard(proc)


def parse_power(text: str, tool: str) -> float:
    """Watts from the tool's output; IpmiError('parse') if the reading is missing or not active."""
    power, state = (_IPMITOOL_POWER, _IPMITOOL_STATE) if tool == "ipmitool" else (_FREEIPMI_POWER, _FREEIPMI_STATE)
    m_state = state.search(text)
    if m_state and m_state.group(1).lower() not in ("activated", "active"):
        raise IpmiError("parse", f"DCMI power measurement not active ({m_state.group(1)})")
    m = power.search(text)
    if not m:
        raise IpmiError("parse", f"no power reading in output: {_first_line(text)[:120]!r}")
    return float(m.group(1))


def _reason(exc: IpmiError) -> str:
    """Why a failed first reading makes the sensor unavailable, in a few words."""
    if _NOT_SUPPORTED.search(str(exc)):
        return "DCMI power reading not supported"
    if exc.kind == "parse":
        return "unexpected DCMI output"
    if exc.kind == "run":
        return "binary not runnable"
    return "BMC not answering"  # timeout, no device, no session, refused login


class IpmiSensor:
    """Node power (channel ``node``, quantity ``power``, W, component ``node``) from DCMI."""

    name = "ipmi"

    def __init__(self, config: IpmiConfig | None = None) -> None:
        config = config or IpmiConfig()
        self.binary = config.binary or os.environ.get("SVBENCH_IPMITOOL") or "ipmitool"
        self.interval_s = config.interval_s
        self.timeout_s = config.timeout_s
        self.retries = max(0, config.retries)
        self.extra_args = [str(arg) for arg in config.extra_args]
        password_file, password_env = config.password_file, config.password_env
        self.tool = ipmi_tool(self.binary)
        if any(is_secret_arg(arg, self.tool) for arg in self.extra_args):  # the config's own rule, for direct use
            raise SensorConfigError(SECRET_ARGS_MESSAGE)
        self._env: dict | None = None  # the tool's environment when it differs from ours
        if password_file or password_env:
            if self.tool != "ipmitool":
                raise SensorConfigError("energy.ipmi.password_file/password_env: supported with ipmitool only "
                                        "(FreeIPMI reads its password from its own config file)")
            if password_file:
                self.extra_args += ["-f", str(password_file)]
            else:
                if password_env not in os.environ:
                    raise SensorConfigError(f"energy.ipmi.password_env: the variable {password_env} is not set "
                                            "in the job's environment")
                self.extra_args += ["-E"]
                self._env = os.environ | {"IPMI_PASSWORD": os.environ[password_env]}
        self._secrets = secret_values(self.extra_args, self.tool)
        self._path: str | None = None
        self.persistent = config.persistent and self.tool == "ipmitool"  # FreeIPMI has no shell
        self._shell: IpmitoolShell | None = None
        self._shell_note = ""
        # (wall, monotonic) ns midpoint of the try that answered in the last read(); None after a failure.
        # A retried read can take seconds: the caller stamps the reading with this, not the call's midpoint.
        self.last_stamp: tuple[int, int] | None = None

    def _argv(self) -> list[str]:
        command = ["--get-system-power-statistics"] if self.tool == "freeipmi" else ["dcmi", "power", "reading"]
        return [self._path or self.binary, *self.extra_args, *command]

    def _redacted_argv(self) -> list[str]:
        return [redact(a, self._secrets) for a in self._argv()]

    def open(self) -> None:
        self._path = shutil.which(self.binary)
        if self._path is None:
            raise SensorUnavailable(f"binary not found: {redact(self.binary, self._secrets)}")
        if self.persistent:
            self._shell = IpmitoolShell([self._path, *self.extra_args, "shell"], self._env)
            try:
                self._shell.start(self.timeout_s)
            except IpmiError as exc:
                # no shell: one process per reading decides below whether there is a BMC at all
                self._shell = None
                self._shell_note = redact(str(exc), self._secrets)
                if exc.kind == "timeout":
                    raise SensorUnavailable(f"BMC not answering: {self._shell_note}") from exc
        try:
            self.read()
        except IpmiError as exc:
            self.close()
            raise SensorUnavailable(f"{_reason(exc)}: {exc}") from exc

    def _run_once(self) -> str:
        # subprocess, not os.posix_spawn (which costs the parent less CPU): CPython drops the GIL around
        # subprocess's vfork (gh-104372) but holds it through posix_spawn until the child has exec'ed,
        # so a slow exec (ipmitool on a busy or network filesystem) would stall the NVML/RAPL thread.
        code, out, err = run_bounded(self._argv(), self.timeout_s, self._env)
        if code != 0:
            detail = _first_line(err.decode(errors="replace") + "\n" + out.decode(errors="replace"))
            raise IpmiError("exit", f"exit status {code}: {redact(detail, self._secrets)[:200]}")
        return _decode(out)

    def _shell_once(self) -> float:
        """One try through the shell. A shell that died or timed out is started again by the next try;
        one that answered with an error is ended (told to exit: a LAN BMC has few session slots) so
        the next try gets a fresh one, as a process per reading would: a session the BMC dropped
        would otherwise fail every reading for the rest of the job."""
        assert self._shell is not None
        try:
            out = self._shell.command(READING_LINE, self.timeout_s)
            try:
                return parse_power(out, self.tool)
            except IpmiError:  # no reading: an error message is where one-shot ipmitool exits non-zero
                if _COMMAND_FAILED.search(out):
                    raise IpmiError("exit", f"command failed: {_first_line(out)[:200]}") from None
                raise
        except IpmiError as exc:
            if exc.kind != "timeout":
                self._shell.stop()
            raise

    def _process_once(self) -> float:
        return parse_power(self._run_once(), self.tool)

    def read(self) -> list[Reading]:
        once = self._process_once if self._shell is None else self._shell_once
        last: IpmiError | None = None
        self.last_stamp = None
        for _ in range(self.retries + 1):
            t0_wall, t0_mono = time.time_ns(), time.monotonic_ns()
            try:
                watts = once()
            except IpmiError as exc:
                last = IpmiError(exc.kind, redact(str(exc), self._secrets))
                continue
            t1_wall, t1_mono = time.time_ns(), time.monotonic_ns()
            self.last_stamp = ((t0_wall + t1_wall) // 2, (t0_mono + t1_mono) // 2)
            return [Reading("node", "power", watts, "W", "node")]
        assert last is not None
        tries = self.retries + 1
        raise IpmiError(last.kind, f"{last} ({tries} {'try' if tries == 1 else 'tries'})")

    def metadata(self) -> dict:
        if self._shell is not None:
            mode = "one long-lived `ipmitool shell`, a command line per reading"
        else:
            mode = "one process per reading" + (f" (no shell: {self._shell_note})" if self._shell_note else "")
        return {
            "tool": self.tool,
            "mode": mode,
            "command": self._redacted_argv(),
            "timeout_s": self.timeout_s,
            "retries": self.retries,
            "covers": "whole node at the PSU, whole watts; on some GPU servers DCMI leaves the GPUs out",
        }

    def close(self) -> None:
        """End the shell and any per-reading tool still running (a probe abandoned at the start-up bound)."""
        if self._shell is not None:
            self._shell.stop()
        for proc in list(_IN_FLIGHT):
            _end(proc)

