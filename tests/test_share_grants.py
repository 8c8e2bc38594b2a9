"""The owner's share requests, read before the hub is asked (share_grants.py); the hub's own answers are
tested on the real hub in test_sharing.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from jupyter_vnc.share_grants import MAX_MINUTES, ExpiryFile, Grant, ShareError, parse_grant, share_rows


@pytest.fixture(autouse=True)
def _owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "dave")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "")


def _grant(body: object) -> Grant:
    return parse_grant(json.dumps(body).encode())


def test_a_request_names_one_user_or_group_a_right_and_an_optional_time() -> None:
    assert _grant({"user": "erin"}) == Grant("user", "erin", "watch", None)
    assert _grant({"group": "lab", "right": "control", "minutes": 60}) == Grant("group", "lab", "control", 60)
    assert _grant({"user": " erin ", "group": ""}) == Grant("user", "erin", "watch", None)
    assert _grant({"user": "erin", "minutes": MAX_MINUTES}).minutes == MAX_MINUTES


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "JSON object"),
        (b"{not json", "must be JSON"),
        (b"[1]", "JSON object"),
        (json.dumps({}).encode(), "exactly one user or one group"),
        (json.dumps({"user": "erin", "group": "lab"}).encode(), "exactly one"),
        (json.dumps({"user": "erin", "scopes": ["admin:users"]}).encode(), "unknown field(s): scopes"),
        (json.dumps({"user": 7}).encode(), "must be a name"),
        (json.dumps({"user": "../dave"}).encode(), "is not a user name"),
        (json.dumps({"user": "a b"}).encode(), "is not a user name"),
        (json.dumps({"user": "erin", "right": "admin"}).encode(), 'right must be "watch" or "control"'),
        (json.dumps({"user": "erin", "minutes": 0}).encode(), "minutes must be a whole number"),
        (json.dumps({"user": "erin", "minutes": 1.5}).encode(), "minutes must be a whole number"),
        (json.dumps({"user": "erin", "minutes": True}).encode(), "minutes must be a whole number"),
        (json.dumps({"user": "erin", "minutes": MAX_MINUTES + 1}).encode(), "minutes must be a whole number"),
        (json.dumps({"user": "dave"}).encode(), "your own desktop"),
    ],
)
def test_a_bad_request_is_refused_with_its_reason(body: bytes, message: str) -> None:
    with pytest.raises(ShareError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_grant(body)
    assert caught.value.status == 400


def test_the_hubs_list_reads_as_who_may_do_what_until_when() -> None:
    hub_reply = {
        "items": [
            {
                "kind": "user",
                "user": {"name": "erin"},
                "group": None,
                "scopes": ["access:servers!server=dave/", "custom:jupyter-vnc:control!server=dave/"],
                "created_at": "2026-12-07T10:00:00Z",
            },
            {
                "kind": "group",
                "user": None,
                "group": {"name": "lab"},
                "scopes": ["access:servers!server=dave/"],
            },
            {"kind": "user", "user": None, "scopes": []},  # nobody: left out
        ]
    }
    rows = share_rows(hub_reply, {"group:lab": 1_800_000_000.0})
    assert rows == [
        {
            "kind": "group",
            "name": "lab",
            "right": "watch",
            "created_at": None,
            "expires_at": "2027-01-15T08:00:00Z",
        },
        {
            "kind": "user",
            "name": "erin",
            "right": "control",
            "created_at": "2026-12-07T10:00:00Z",
            "expires_at": None,
        },
    ]


def test_the_ends_of_timed_shares_survive_a_restart_and_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "shares" / "_default.json"
    ExpiryFile(path).set("user:erin", time.time() + 60)
    ExpiryFile(path).set("group:lab", 5.0)
    again = ExpiryFile(path).read()  # what a restarted server reads
    assert set(again) == {"user:erin", "group:lab"} and again["group:lab"] == 5.0
    ExpiryFile(path).set("user:erin", None)
    assert set(ExpiryFile(path).read()) == {"group:lab"}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".shares-")]  # no temporary left
    path.write_text("{garbage")
    assert ExpiryFile(path).read() == {}  # the server keeps working; the shares last until revoked


def test_the_servers_token_asks_for_the_control_scope_only_where_the_hub_defines_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An undefined custom scope in a token request fails every spawn (JupyterHub checks scopes exist)."""
    from jupyterhub import scopes

    from jupyter_vnc.sharing import CONTROL_SCOPE
    from jupyter_vnc.spawner import VNCSlurmSpawner

    monkeypatch.delitem(scopes.scope_definitions, CONTROL_SCOPE, raising=False)
    without = VNCSlurmSpawner().server_token_scopes
    assert "shares!server" in without and "read:users:name" in without
    assert not [s for s in without if s.startswith(CONTROL_SCOPE)]
    monkeypatch.setitem(scopes.scope_definitions, CONTROL_SCOPE, {"description": "test"})
    assert f"{CONTROL_SCOPE}!server" in VNCSlurmSpawner().server_token_scopes
    # Every scope asked for is one JupyterHub knows (a typo would fail every spawn the same way).
    scopes._check_scopes_exist(set(VNCSlurmSpawner().server_token_scopes))
