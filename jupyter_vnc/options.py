"""What a user may ask for, and the one validator every request goes through.

The spawn form and the Hub REST API (``user_options``) both end here, so a value reaches the job
script only after it has been checked against the admin's limits, and a value that could change the
script's meaning (newlines, quotes, ``$( )``, ``;``) never gets that far: every field is checked
against a closed pattern, not against a list of dangerous characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# ASCII classes only: "\d" also matches other scripts' digits (int() reads an Arabic-Indic one as 1),
# "\s" other spaces.
RESOLUTION_RE = re.compile(r"([0-9]{3,5})x([0-9]{3,5})")  # always fullmatch: "$" would accept a newline
INT_RE = re.compile(r"[ \t]*[0-9]{1,6}[ \t]*")
HOURS_RE = re.compile(r"[ \t]*[0-9]{1,4}(\.[0-9]{1,4})?[ \t]*")
MAX_INPUT = 64  # longest string option looked at; anything longer is refused unread
MIN_SIDE, MAX_SIDE = 320, 8192
PARTITION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# What goes after #SBATCH --mail-user=: an address, or a local user name where the site's MailProg
# delivers to those. A closed pattern: a user name with a newline must not add a line to the script.
MAIL_RE = re.compile(r"[A-Za-z0-9._%+-]{1,64}(@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*)?")
FIELDS = ("gpus", "memory_gb", "hours", "resolution", "partition", "queue_hours", "email")
# Spellings of yes and no that a form checkbox, a JSON body or a curl -d line may use.
_YES, _NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def parse_resolution(value: str) -> tuple[int, int]:
    """``"1920x1080"`` → ``(1920, 1080)``; anything else raises ValueError with the reason."""
    m = RESOLUTION_RE.fullmatch(value.strip(" \t")) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"resolution must look like 1920x1080, not {value!r}")
    width, height = int(m.group(1)), int(m.group(2))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ValueError(f"resolution {value!r} is outside {MIN_SIDE}..{MAX_SIDE} pixels per side")
    return width, height


class OptionsError(ValueError):
    """A request the site does not allow; the message tells the user what to change."""


@dataclass(frozen=True)
class Limits:
    """The admin's limits and defaults (built from the spawner's traits)."""

    max_gpus: int = 1
    max_memory_gb: int = 64
    max_hours: float = 12.0
    resolutions: Sequence[str] = ("1280x720", "1600x900", "1920x1080", "2560x1440", "3840x2160")
    partitions: Sequence[str] = ()  # empty: Slurm's default partition, no choice offered
    default_gpus: int = 1
    default_memory_gb: int = 8
    default_hours: float = 4.0
    default_resolution: str = "1920x1080"
    default_partition: str = ""
    # How long a desktop may wait in the Slurm queue before it is cancelled (0: as long as Slurm keeps
    # it), and the longest wait a user may ask for (0: any, including 0).
    default_queue_hours: float = 0.0
    max_queue_hours: float = 0.0
    # Whether the site mails users who ask (Slurm's --mail-type), and to what address.
    email_address: str = ""
    fixed: Sequence[str] = field(default_factory=tuple)  # fields the user may not change

    def defaults(self) -> dict[str, Any]:
        return {
            "gpus": min(self.default_gpus, self.max_gpus),
            "memory_gb": min(self.default_memory_gb, self.max_memory_gb),
            "hours": min(self.default_hours, self.max_hours),
            "resolution": self.default_resolution,
            "partition": self.default_partition or (self.partitions[0] if self.partitions else ""),
            "queue_hours": (
                min(self.default_queue_hours or self.max_queue_hours, self.max_queue_hours)
                if self.max_queue_hours
                else self.default_queue_hours
            ),
            "email": False,
        }

    def choices(self) -> list[str]:
        """The fields a user can actually choose; none means the spawn form can be skipped."""
        out = []
        if self.max_gpus > 0 and "gpus" not in self.fixed:
            out.append("gpus")
        if "memory_gb" not in self.fixed:
            out.append("memory_gb")
        if "hours" not in self.fixed:
            out.append("hours")
        if len(self.resolutions) > 1 and "resolution" not in self.fixed:
            out.append("resolution")
        if len(self.partitions) > 1 and "partition" not in self.fixed:
            out.append("partition")
        # Not a reason on its own to show the form (a site that fixed everything else skips it), so
        # it is offered beside the other fields, not listed here; see queue_choice().
        return out

    def queue_choice(self) -> bool:
        """Whether the user may set their own "give up after" (the form then offers it)."""
        return "queue_hours" not in self.fixed


@dataclass(frozen=True)
class DesktopRequest:
    gpus: int
    memory_gb: int
    hours: float
    resolution: str
    partition: str
    # Cancel the job if Slurm has not started it after this many hours (0: wait as long as it takes).
    # A default, so that a request kept from before this field existed still reads back.
    queue_hours: float = 0.0
    # Slurm mails the user when the job starts or fails (where the site offers it).
    email: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def walltime(self) -> str:
        """Slurm's ``--time`` value, ``H:MM:00``."""
        minutes = round(self.hours * 60)
        return f"{minutes // 60}:{minutes % 60:02d}:00"


def mail_address(template: str, username: str) -> str:
    """The address Slurm mails ``username`` at (the admin's ``email_address``, ``{username}`` filled
    in); OptionsError when it is not one Slurm can be given safely."""
    address = template.replace("{username}", username)
    if not MAIL_RE.fullmatch(address):
        raise OptionsError(f"e-mail cannot be sent for user {_show(username)} (address {_show(address)})")
    return address


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise OptionsError(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, int) and abs(value) < 10**6:
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return int(value)
    if isinstance(value, str) and INT_RE.fullmatch(value):
        return int(value)
    raise OptionsError(f"{name} must be a whole number up to 6 digits, not {_show(value)}")


def _as_hours(value: Any, name: str = "hours") -> float:
    if isinstance(value, bool):
        raise OptionsError(f"{name} must be a number, not {value!r}")
    # A JSON integer may have any number of digits; float() of a huge one overflows.
    number = isinstance(value, float) or (isinstance(value, int) and abs(value) < 10**6)
    text = isinstance(value, str) and HOURS_RE.fullmatch(value)
    if not (number or text):
        raise OptionsError(f"{name} must be a number such as 4 or 0.5, not {_show(value)}")
    hours = float(value)
    if not math.isfinite(hours):
        raise OptionsError(f"{name} must be a finite number")
    return hours


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _YES | _NO:
        return value.strip().lower() in _YES
    raise OptionsError(f"{name} must be true or false, not {_show(value)}")


def _show(value: Any) -> str:
    """A value fit for an error message: printable ASCII, bounded (never the whole of a huge input)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return "a number with more than 30 digits"  # repr() of a huge int is slow and unbounded
    if isinstance(value, str) and len(value) > 1000:
        value = value[:1000]
    text = ascii(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(raw: Mapping[str, Any] | None, limits: Limits) -> DesktopRequest:
    """Check a request (user_options or the parsed form) against ``limits``; missing fields take the
    defaults. Raises OptionsError naming the first problem. Pure: no I/O, no side effects."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise OptionsError('options must be a JSON object such as {"gpus": 1, "hours": 4}')
    unknown = [k for k in raw if k not in FIELDS]
    if unknown:
        shown = ", ".join(_show(k) for k in unknown[:3]) + (
            f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        )
        raise OptionsError(f"unknown option(s) {shown}; allowed: {', '.join(FIELDS)}")
    values = limits.defaults()
    for key, value in raw.items():
        if isinstance(value, str) and len(value) > MAX_INPUT:
            raise OptionsError(f"{key} is too long ({len(value)} characters)")
        if key in limits.fixed and value not in (None, "") and value != values[key]:
            raise OptionsError(f"{key} is set by the site to {values[key]!r} and cannot be changed")
        if value is not None and value != "":
            values[key] = value

    gpus = _as_int("gpus", values["gpus"])
    if not 0 <= gpus <= limits.max_gpus:
        raise OptionsError(f"gpus must be between 0 and {limits.max_gpus}, not {gpus}")

    memory = _as_int("memory_gb", values["memory_gb"])
    if not 1 <= memory <= limits.max_memory_gb:
        raise OptionsError(f"memory_gb must be between 1 and {limits.max_memory_gb}, not {memory}")

    hours = _as_hours(values["hours"])
    if not (0.25 <= hours <= limits.max_hours):
        raise OptionsError(f"hours must be between 0.25 and {limits.max_hours:g}, not {hours:g}")

    resolution = values["resolution"]
    if not isinstance(resolution, str) or not RESOLUTION_RE.fullmatch(resolution):
        raise OptionsError(f"resolution must look like 1920x1080, not {_show(resolution)}")
    try:
        parse_resolution(resolution)
    except ValueError as e:
        raise OptionsError(str(e)) from None
    if limits.resolutions and resolution not in limits.resolutions:
        raise OptionsError(
            f"resolution {resolution} is not offered; choose one of {', '.join(limits.resolutions)}"
        )

    partition = values["partition"]
    if not isinstance(partition, str) or (partition and not PARTITION_RE.fullmatch(partition)):
        raise OptionsError(f"partition must be a Slurm partition name, not {_show(partition)}")
    if limits.partitions and partition not in limits.partitions:
        raise OptionsError(
            f"partition {partition!r} is not offered; choose one of {', '.join(limits.partitions)}"
        )
    if not limits.partitions and partition and partition != limits.default_partition:
        raise OptionsError("this site does not let you choose a partition")

    # Rounded before the check: 1e-9 must not pass as "more than 0" and then become 0, "no limit".
    queue_hours = round(_as_hours(values["queue_hours"], "queue_hours"), 4)
    if queue_hours < 0 or (limits.max_queue_hours and not 0 < queue_hours <= limits.max_queue_hours):
        raise OptionsError(
            f"queue_hours (give up after waiting in the queue) must be more than 0 and at most "
            f"{limits.max_queue_hours:g}, not {queue_hours:g}"
            if limits.max_queue_hours
            else f"queue_hours must be 0 (no limit) or more, not {queue_hours:g}"
        )

    email = _as_bool("email", values["email"])
    if email and not limits.email_address:
        raise OptionsError("this site does not send e-mail about desktops; leave email out")

    return DesktopRequest(gpus, memory, round(hours, 4), resolution, partition, queue_hours, email)


def from_form(formdata: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The spawn form's fields (lists of strings, as JupyterHub passes them) as user_options; the
    values stay strings so that ``validate`` gives the same messages for both entry points."""
    out: dict[str, Any] = {}
    for key in FIELDS:
        values = formdata.get(key)
        if values:
            out[key] = values[0].strip()
    return out
