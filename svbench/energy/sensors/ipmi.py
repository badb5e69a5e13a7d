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
servers leave the GPUs out. Calls are slow and may hang: each try has a timeout and kills the tool's
whole process group, so ``read()`` takes at most ``(retries + 1) × (timeout_s + 1 s)``.

BMC credentials passed in ``extra_args`` (``-H/-U/-P/-k/-y/-f`` for ipmitool, ``-h/-u/-p/-k`` and
their long forms for FreeIPMI) never appear in error messages, metadata or logs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

from svbench.energy.sensors.base import Reading, SensorUnavailable

_SECRET_FLAGS = {
    "ipmitool": ("-H", "-U", "-P", "-k", "-y", "-f"),
    "freeipmi": ("-h", "-u", "-p", "-k", "--hostname", "--username", "--password", "--k-g"),
}
_IPMITOOL_POWER = re.compile(r"Instantaneous power reading:\s*(\d+)\s*Watts", re.IGNORECASE)
_IPMITOOL_STATE = re.compile(r"Power reading state is:\s*(\w+)", re.IGNORECASE)
_FREEIPMI_POWER = re.compile(r"^Current Power\s*:\s*(\d+)\s*Watts", re.IGNORECASE | re.MULTILINE)
_FREEIPMI_STATE = re.compile(r"^Power Measurement\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_NOT_SUPPORTED = re.compile(r"DCMI request failed|invalid command|not supported|not active", re.IGNORECASE)


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


def parse_power(text: str, tool: str) -> float:
    """Watts from the tool's output; IpmiError('parse') if the reading is missing or not active."""
    power, state = (_IPMITOOL_POWER, _IPMITOOL_STATE) if tool == "ipmitool" else (_FREEIPMI_POWER, _FREEIPMI_STATE)
    m_state = state.search(text)
    if m_state and m_state.group(1).lower() not in ("activated", "active"):
        raise IpmiError("parse", f"DCMI power measurement not active ({m_state.group(1)})")
    m = power.search(text)
    if not m:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        raise IpmiError("parse", f"no power reading in output: {first[:120]!r}")
    return float(m.group(1))


class IpmiSensor:
    """Node power (channel ``node``, quantity ``power``, W, component ``node``) from DCMI."""

    name = "ipmi"

    def __init__(
        self,
        binary: str | None = None,
        interval_s: float = 2.0,
        timeout_s: float = 5.0,
        retries: int = 2,
        extra_args: list[str] | None = None,
    ) -> None:
        self.binary = binary or os.environ.get("SVBENCH_IPMITOOL") or "ipmitool"
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.extra_args = list(extra_args or [])
        self.tool = "freeipmi" if os.path.basename(self.binary) == "ipmi-dcmi" else "ipmitool"
        self._secrets = secret_values(self.extra_args, self.tool)
        self._path: str | None = None

    def _argv(self) -> list[str]:
        command = ["--get-system-power-statistics"] if self.tool == "freeipmi" else ["dcmi", "power", "reading"]
        return [self._path or self.binary, *self.extra_args, *command]

    def _redacted_argv(self) -> list[str]:
        return [redact(a, self._secrets) for a in self._argv()]

    def open(self) -> None:
        self._path = shutil.which(self.binary)
        if self._path is None:
            raise SensorUnavailable(f"binary not found: {redact(self.binary, self._secrets)}")
        try:
            self.read()
        except IpmiError as exc:
            if _NOT_SUPPORTED.search(str(exc)):
                reason = "DCMI power reading not supported"
            elif exc.kind == "parse":
                reason = "unexpected DCMI output"
            elif exc.kind == "run":
                reason = "binary not runnable"
            else:  # timeout, no device, no session, refused login
                reason = "BMC not answering"
            raise SensorUnavailable(f"{reason}: {exc}") from exc

    def _run_once(self) -> str:
        # Own session, so a timeout can kill the tool and anything it started: a grandchild holding
        # the pipes open would otherwise keep communicate() waiting after the tool itself is dead.
        # subprocess, not os.posix_spawn (which costs the parent less CPU): CPython drops the GIL around
        # subprocess's vfork (gh-104372) but holds it through posix_spawn until the child has exec'ed,
        # so a slow exec (ipmitool on a busy or network filesystem) would stall the NVML/RAPL thread.
        try:
            proc = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        except OSError as exc:  # not executable, removed since open(), ...
            raise IpmiError("run", f"cannot run {os.path.basename(self.binary)}: {exc.strerror}") from None
        try:
            out, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.communicate(timeout=1.0)
            except subprocess.TimeoutExpired:
                proc.kill()  # something escaped the group; give up on its output
            raise IpmiError("timeout", f"no answer within {self.timeout_s:g} s") from None
        if proc.returncode != 0:
            detail = next((line.strip() for line in (err + "\n" + out).splitlines() if line.strip()), "")
            message = f"exit status {proc.returncode}: {redact(detail, self._secrets)[:200]}"
            raise IpmiError("exit", message)
        return out

    def read(self) -> list[Reading]:
        last: IpmiError | None = None
        for _ in range(self.retries + 1):
            try:
                watts = parse_power(self._run_once(), self.tool)
                return [Reading("node", "power", watts, "W", "node")]
            except IpmiError as exc:
                last = IpmiError(exc.kind, redact(str(exc), self._secrets))
        assert last is not None
        tries = self.retries + 1
        raise IpmiError(last.kind, f"{last} ({tries} {'try' if tries == 1 else 'tries'})")

    def metadata(self) -> dict:
        return {
            "tool": self.tool,
            "command": self._redacted_argv(),
            "timeout_s": self.timeout_s,
            "retries": self.retries,
            "covers": "whole node at the PSU, whole watts; on some GPU servers DCMI leaves the GPUs out",
        }

    def close(self) -> None:
        pass  # each reading is its own process


def make(config: dict) -> IpmiSensor:
    """Build an IpmiSensor from its config section.

    Keys: ``binary`` (default env ``SVBENCH_IPMITOOL`` or ``ipmitool``; a basename of ``ipmi-dcmi``
    selects FreeIPMI), ``interval_s`` (2.0), ``timeout_s`` (5.0), ``retries`` (2), ``extra_args``
    (list, e.g. ``["-I", "lanplus", "-H", host, "-U", user, "-P", password]``; credentials are
    redacted everywhere). Other keys are ignored.
    """
    return IpmiSensor(
        binary=config.get("binary"),
        interval_s=float(config.get("interval_s", 2.0)),
        timeout_s=float(config.get("timeout_s", 5.0)),
        retries=int(config.get("retries", 2)),
        extra_args=[str(a) for a in config.get("extra_args") or []],
    )
