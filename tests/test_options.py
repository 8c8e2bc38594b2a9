"""The one validator behind the spawn form and the REST API: every invalid class refused with a
message, and no accepted value can change the meaning of the job script."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_vnc import jobscript
from jupyter_vnc.options import (
    DesktopRequest,
    Limits,
    OptionsError,
    from_form,
    mail_address,
    parse_resolution,
    validate,
)
from jupyter_vnc.resources import template_path

# No service: also run against the lowest declared dependency versions (devstack/floors).
pytestmark = pytest.mark.unit

LIMITS = Limits(max_gpus=2, max_memory_gb=32, max_hours=8, partitions=("vnc", "gpu"), default_partition="vnc")
SAFE = re.compile(r"[A-Za-z0-9_.:x-]*")


def test_defaults_fill_what_the_user_leaves_out() -> None:
    assert validate({}, LIMITS) == DesktopRequest(
        gpus=1, memory_gb=8, hours=4.0, resolution="1920x1080", partition="vnc"
    )
    assert validate(None, LIMITS).gpus == 1


def test_a_full_request_as_the_api_sends_it() -> None:
    raw = {"gpus": 2, "memory_gb": 16, "hours": 8, "resolution": "2560x1440", "partition": "gpu"}
    request = validate({**raw, "queue_hours": 2}, LIMITS)
    assert request.as_dict() == {**raw, "hours": 8.0, "queue_hours": 2.0, "email": False}
    assert request.walltime == "8:00:00"
    assert validate({"hours": 0.5}, LIMITS).walltime == "0:30:00"


def test_form_strings_give_the_same_request() -> None:
    form = {
        "gpus": ["2"],
        "memory_gb": [" 16 "],
        "hours": ["1.5"],
        "resolution": ["1280x720"],
        "partition": ["gpu"],
    }
    assert validate(from_form(form), LIMITS) == DesktopRequest(2, 16, 1.5, "1280x720", "gpu")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"gpus": 3}, "gpus must be between 0 and 2"),
        ({"gpus": -1}, "gpus must be between 0 and 2"),
        ({"gpus": 1.5}, "gpus must be a whole number"),
        ({"gpus": True}, "gpus must be a whole number"),
        ({"gpus": "1; rm -rf ~"}, "gpus must be a whole number"),
        ({"memory_gb": 0}, "memory_gb must be between 1 and 32"),
        ({"memory_gb": 33}, "memory_gb must be between 1 and 32"),
        ({"memory_gb": "16G"}, "memory_gb must be a whole number"),
        ({"hours": 9}, "hours must be between 0.25 and 8"),
        ({"hours": 0.1}, "hours must be between 0.25 and 8"),
        ({"hours": float("nan")}, "hours must be a finite number"),
        ({"hours": "4$(id)"}, "hours must be a number"),
        ({"hours": [4]}, "hours must be a number"),
        ({"resolution": "1920x1080\n#SBATCH --uid=0"}, "resolution must look like 1920x1080"),
        ({"resolution": "1920x1080\n"}, "resolution must look like 1920x1080"),
        ({"resolution": "1024x768"}, "not offered"),
        ({"resolution": "99999x99999"}, "is outside 320..8192 pixels"),
        ({"resolution": 1920}, "resolution must look like"),
        ({"partition": "debug"}, "not offered"),
        ({"partition": "vnc; scancel -u root"}, "partition must be a Slurm partition name"),
        ({"partition": "vnc'\"`"}, "partition must be a Slurm partition name"),
        ({"colour": "blue"}, "unknown option(s) 'colour'"),
        # Digits and spaces of other scripts are not ASCII digits (int() reads U+0661 as 1).
        ({"gpus": "\u0661"}, "gpus must be a whole number"),
        ({"memory_gb": "\uff18"}, "memory_gb must be a whole number"),
        ({"hours": "\u0662"}, "hours must be a number"),
        ({"hours": "\u00a04"}, "hours must be a number"),
        ({"resolution": "\u0661920x1080"}, "resolution must look like 1920x1080"),
        # Huge numbers: a clear message, no OverflowError, no 400-digit echo.
        ({"hours": 10**400}, "hours must be a number such as 4 or 0.5, not a number with more than 30"),
        ({"gpus": 10**400}, "gpus must be a whole number up to 6 digits, not a number with more than 30"),
        ({"memory_gb": "9" * 400}, "memory_gb is too long (400 characters)"),
    ],
)
def test_every_invalid_class_is_refused_with_a_message(raw: dict, message: str) -> None:
    with pytest.raises(OptionsError, match=re.escape(message)):
        validate(raw, LIMITS)


@pytest.mark.parametrize(
    "raw",
    [
        {"x" * 100_000: 1},
        {f"k{i}": 1 for i in range(1000)},
        {"partition": "p" * 100_000},
        {"hours": 10**4000},
        {"gpus": -(10**5000)},
        {"resolution": ["x" * 10_000]},
    ],
)
def test_error_messages_stay_short_whatever_the_input(raw: dict) -> None:
    with pytest.raises(OptionsError) as raised:
        validate(raw, LIMITS)
    assert len(str(raised.value)) < 200 and str(raised.value).isascii()


def test_not_an_object() -> None:
    with pytest.raises(OptionsError, match="JSON object"):
        validate(["gpus", 1], LIMITS)  # type: ignore[arg-type]


def test_fixed_options_cannot_be_changed_but_may_be_repeated() -> None:
    fixed = Limits(max_gpus=2, fixed=("gpus",), default_gpus=1)
    assert validate({"gpus": 1}, fixed).gpus == 1
    with pytest.raises(OptionsError, match="set by the site"):
        validate({"gpus": 2}, fixed)
    assert "gpus" not in fixed.choices()


def test_no_choice_at_all_means_no_form() -> None:
    nothing = Limits(max_gpus=0, resolutions=("1920x1080",), fixed=("memory_gb", "hours"))
    assert nothing.choices() == []


QUEUE = Limits(default_queue_hours=24, max_queue_hours=168)


def test_the_queue_wait_has_the_sites_default_and_the_user_may_choose_within_its_maximum() -> None:
    assert validate({}, QUEUE).queue_hours == 24
    assert validate({"queue_hours": "0.5"}, QUEUE).queue_hours == 0.5
    assert validate({"queue_hours": 168}, QUEUE).queue_hours == 168
    for wrong in (0, 169, -1, 1e-9):  # 1e-9 would round to 0, "no limit", past a site's maximum
        with pytest.raises(OptionsError, match=r"queue_hours .* must be more than 0 and at most 168"):
            validate({"queue_hours": wrong}, QUEUE)
    with pytest.raises(OptionsError, match="queue_hours must be a number"):
        validate({"queue_hours": "1h"}, QUEUE)
    # A site's default above its own maximum is brought down to it, not refused.
    assert validate({}, Limits(default_queue_hours=100, max_queue_hours=48)).queue_hours == 48


def test_without_a_maximum_a_user_may_wait_as_long_as_slurm_keeps_the_job() -> None:
    unlimited = Limits(default_queue_hours=0, max_queue_hours=0)
    assert validate({}, unlimited).queue_hours == 0
    assert validate({"queue_hours": 500}, unlimited).queue_hours == 500
    with pytest.raises(OptionsError, match=r"queue_hours must be 0 \(no limit\) or more"):
        validate({"queue_hours": -2}, unlimited)


def test_a_site_may_fix_the_queue_wait() -> None:
    fixed = Limits(default_queue_hours=4, max_queue_hours=8, fixed=("queue_hours",))
    assert not fixed.queue_choice() and QUEUE.queue_choice()
    with pytest.raises(OptionsError, match="set by the site"):
        validate({"queue_hours": 8}, fixed)


def test_partition_choice_needs_partitions() -> None:
    single = Limits(default_partition="vnc")
    assert validate({"partition": "vnc"}, single).partition == "vnc"
    with pytest.raises(OptionsError, match="does not let you choose a partition"):
        validate({"partition": "other"}, single)


values = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**7), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=10**20, max_value=10**500), st.text(max_size=30),
    st.text(st.characters(categories=["Nd", "Zs"]), min_size=1, max_size=6),
    st.sampled_from(["1", "2", "0.5", "1920x1080", "vnc", "gpu", "3840x2160", "8"]),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip
requests = st.dictionaries(
    st.sampled_from(["gpus", "memory_gb", "hours", "resolution", "partition", "queue_hours", "extra"]),
    values,
    max_size=7,
)
TEMPLATE = template_path("job.sh.j2").read_text()


def render(request: DesktopRequest) -> str:
    return jobscript.render(
        TEMPLATE, job_name="jupyter-vnc-alice", log_dir="/home/alice/logs", homedir="/home/alice",
        keepvars="JUPYTERHUB_API_TOKEN", partition=request.partition, runtime=request.walltime,
        memory=f"{request.memory_gb}G", gres=f"gpu:{request.gpus}" if request.gpus else "", nprocs="",
        reservation="", qos="", account="", options="", resolution=request.resolution, prologue="",
        epilogue="", image="", apptainer="apptainer", apptainer_args=[], container_env=[], cmd="server",
        srun="",
    )  # fmt: skip


@settings(max_examples=4000, deadline=None)
@given(requests)
def test_any_request_is_refused_or_safe_in_the_job_script(raw: dict) -> None:
    try:
        request = validate(raw, LIMITS)
    except OptionsError as e:
        assert str(e) and len(str(e)) < 300  # always a message the user can read, never the whole input
        return
    assert 0 <= request.gpus <= LIMITS.max_gpus
    assert 1 <= request.memory_gb <= LIMITS.max_memory_gb
    assert 0.25 <= request.hours <= LIMITS.max_hours
    assert request.partition in LIMITS.partitions and request.resolution in LIMITS.resolutions
    for value in (str(request.gpus), request.walltime, request.resolution, request.partition):
        assert SAFE.fullmatch(value), value
    script = render(request)
    sbatch = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    # The script's shape never depends on the values: same directives, one value each.
    expected = [
        "job-name",
        "output",
        "chdir",
        "export",
        "get-user-env",
        "no-requeue",
        "partition",
        "time",
        "mem",
    ] + (["gres"] if request.gpus else [])
    assert [line.split("=")[0] for line in sbatch] == [f"#SBATCH --{name}" for name in expected]


def test_the_form_offers_only_what_the_site_leaves_to_choose() -> None:
    everything = Limits(max_gpus=1, resolutions=("1280x720", "1920x1080"), partitions=("vnc", "gpu"))
    assert everything.choices() == ["gpus", "memory_gb", "hours", "resolution", "partition"]
    # One resolution, one partition: nothing to choose there. No GPUs at all: none to ask for.
    single = Limits(max_gpus=0, resolutions=("1920x1080",), partitions=("vnc",))
    assert single.choices() == ["memory_gb", "hours"]
    fixed = Limits(
        resolutions=("1280x720", "1920x1080"),
        partitions=("vnc", "gpu"),
        fixed=("memory_gb", "hours", "resolution", "partition"),
    )
    assert fixed.choices() == ["gpus"]


# c.VNCDesktop.resolution (an admin's setting, or the spawner's choice in the job) is read by the same rule.
@pytest.mark.parametrize(
    ("value", "size"),
    [("1280x720", (1280, 720)), (" 1920x1080\t", (1920, 1080)), ("320x320", (320, 320)),
     ("8192x8192", (8192, 8192)), ("320x8192", (320, 8192))],
)  # fmt: skip
def test_a_resolution_is_width_by_height_within_320_to_8192(value: str, size: tuple[int, int]) -> None:
    assert parse_resolution(value) == size


@pytest.mark.parametrize(
    ("value", "message"),
    [("1920x1080\n", "resolution must look like 1920x1080, not '1920x1080\\n'"),
     ("X1920x1080X", "resolution must look like 1920x1080, not 'X1920x1080X'"),
     ("1920X1080", "resolution must look like 1920x1080"),
     ("319x1080", "resolution '319x1080' is outside 320..8192 pixels per side"),
     ("1920x319", "resolution '1920x319' is outside 320..8192 pixels per side"),
     ("8193x1080", "is outside"), ("1920x8193", "is outside")],
)  # fmt: skip
def test_any_other_resolution_is_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_resolution(value)


ALLOWED = "allowed: gpus, memory_gb, hours, resolution, partition, queue_hours, email"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["gpus", 1], 'options must be a JSON object such as {"gpus": 1, "hours": 4}'),
        ({"colour": "blue"}, f"unknown option(s) 'colour'; {ALLOWED}"),
        ({"a": 1, "b": 2, "c": 3}, f"unknown option(s) 'a', 'b', 'c'; {ALLOWED}"),
        ({"a": 1, "b": 2, "c": 3, "d": 4}, f"unknown option(s) 'a', 'b', 'c' and 1 more; {ALLOWED}"),
        (
            {"a": 1, "b": 2, "gpus": 1, "c": 3, "d": 4, "e": 5},
            f"unknown option(s) 'a', 'b', 'c' and 2 more; {ALLOWED}",
        ),
        # A value is shown as far as 40 characters, then cut: never the whole of a long input.
        ({"k" * 38: 1}, f"unknown option(s) '{'k' * 38}'; {ALLOWED}"),
        ({"k" * 39: 1}, f"unknown option(s) '{'k' * 36}...; {ALLOWED}"),
        ({"k" * 5000: 1}, f"unknown option(s) '{'k' * 36}...; {ALLOWED}"),
        ({"gpus": 10**30 - 1}, f"gpus must be a whole number up to 6 digits, not {'9' * 30}"),
        (
            {"gpus": 10**30},
            "gpus must be a whole number up to 6 digits, not a number with more than 30 digits",
        ),
        # Six digits at most, as the form's fields say; the range is checked after that.
        ({"memory_gb": 10**6}, "memory_gb must be a whole number up to 6 digits, not 1000000"),
        ({"memory_gb": 999_999}, "memory_gb must be between 1 and 32, not 999999"),
        ({"memory_gb": 1e6}, "memory_gb must be a whole number up to 6 digits, not 1000000.0"),
        ({"memory_gb": 999_999.0}, "memory_gb must be between 1 and 32, not 999999"),
        ({"hours": 10**6}, "hours must be a number such as 4 or 0.5, not 1000000"),
        ({"hours": 999_999}, "hours must be between 0.25 and 8, not 999999"),
        ({"hours": True}, "hours must be a number, not True"),
        ({"resolution": 1920}, "resolution must look like 1920x1080, not 1920"),
        (
            {"resolution": "1024x768"},
            "resolution 1024x768 is not offered; "
            "choose one of 1280x720, 1600x900, 1920x1080, 2560x1440, 3840x2160",
        ),
        (
            {"partition": "vnc; scancel -u root"},
            "partition must be a Slurm partition name, not 'vnc; scancel -u root'",
        ),
        ({"partition": "debug"}, "partition 'debug' is not offered; choose one of vnc, gpu"),
        ({"partition": "p" * 65}, "partition is too long (65 characters)"),
    ],
)
def test_each_refusal_tells_the_user_exactly_what_to_change(raw: object, message: str) -> None:
    with pytest.raises(OptionsError) as raised:
        validate(raw, LIMITS)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_a_site_without_partitions_refuses_any_other_with_one_sentence() -> None:
    with pytest.raises(OptionsError) as raised:
        validate({"partition": "gpu"}, Limits(default_partition="vnc"))
    assert str(raised.value) == "this site does not let you choose a partition"
    assert validate({"partition": "p" * 64}, Limits(default_partition="p" * 64)).partition == "p" * 64


def test_the_edges_of_each_range_are_allowed() -> None:
    low = validate({"gpus": 0, "memory_gb": 1, "hours": 0.25}, LIMITS)  # a desktop without a GPU
    assert (low.gpus, low.memory_gb, low.hours) == (0, 1, 0.25)
    high = validate({"gpus": 2, "memory_gb": 32, "hours": 8}, LIMITS)
    assert (high.gpus, high.memory_gb, high.hours) == (2, 32, 8)


def test_a_field_left_empty_takes_the_default_even_where_the_site_fixed_it() -> None:
    assert validate({"gpus": "", "memory_gb": None, "hours": ""}, LIMITS) == validate({}, LIMITS)
    fixed = Limits(max_gpus=2, fixed=("gpus",), default_gpus=1)
    assert validate({"gpus": ""}, fixed).gpus == validate({"gpus": None}, fixed).gpus == 1


def test_hours_are_kept_to_four_decimals() -> None:
    request = validate({"hours": 1 / 3, "queue_hours": 1 / 3}, LIMITS)
    assert (request.hours, request.queue_hours) == (0.3333, 0.3333)


def test_the_first_offered_partition_is_the_default_unless_the_site_names_one() -> None:
    assert validate({}, Limits(partitions=("gpu", "vnc"))).partition == "gpu"
    assert validate({}, Limits(partitions=("gpu", "vnc"), default_partition="vnc")).partition == "vnc"
    assert validate({}, Limits()).partition == ""  # Slurm's default partition


def test_a_default_queue_wait_stands_when_the_site_sets_no_maximum() -> None:
    assert validate({}, Limits(default_queue_hours=5, max_queue_hours=0)).queue_hours == 5


def test_email_is_asked_for_only_where_the_site_sends_it() -> None:
    mails = Limits(email_address="{username}@example.org")
    for yes in (True, "1", "on", "true", " Yes "):
        assert validate({"email": yes}, mails).email is True
    for no in (False, "0", "off", "false", ""):
        assert validate({"email": no}, mails).email is False
    assert validate({}, mails).email is False
    for wrong in ("maybe", 1, [True], "1; rm -rf ~"):
        with pytest.raises(OptionsError, match="email must be true or false"):
            validate({"email": wrong}, mails)
    with pytest.raises(OptionsError, match="this site does not send e-mail"):
        validate({"email": True}, LIMITS)
    assert validate({"email": False}, LIMITS).email is False  # saying no is always fine


def test_the_mail_address_is_one_slurm_can_be_given_safely() -> None:
    assert mail_address("{username}@example.org", "alice") == "alice@example.org"
    assert mail_address("{username}", "alice") == "alice"  # local delivery
    assert mail_address("hpc+{username}@mail.uni-x.de", "a.b-c_d") == "hpc+a.b-c_d@mail.uni-x.de"
    for name in ("al ice", "alice\n#SBATCH --uid=0", "$(id)", "a@b@c", "ünï"):
        with pytest.raises(OptionsError, match="e-mail cannot be sent"):
            mail_address("{username}@example.org", name)
