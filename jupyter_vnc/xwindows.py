"""Finding an application's window on the desktop and maximizing it, the way a window manager expects
(EWMH: ``_NET_CLIENT_LIST``, ``_NET_WM_PID``, a ``_NET_WM_STATE`` request to the root window).

Run as its own short process on the desktop's display, never in the Jupyter server: Xlib takes its
display and cookie from the environment, which the server must not change for itself.

    DISPLAY=:5 XAUTHORITY=... python -m jupyter_vnc.xwindows maximize PID [--timeout 30]

Maximizes the first window of PID, or of a program PID started (a launcher script), once it appears.
Only libX11 is needed, which every desktop has.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import sys
import time
from pathlib import Path

CLIENT_MESSAGE = 33
SUBSTRUCTURE_NOTIFY = 1 << 19
SUBSTRUCTURE_REDIRECT = 1 << 20
STATE_ADD = 1
ANY_TYPE = 0


class _ClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class _ClientIdSpec(ctypes.Structure):
    _fields_ = [("client", ctypes.c_ulong), ("mask", ctypes.c_uint)]


class _ClientIdValue(ctypes.Structure):
    _fields_ = [("spec", _ClientIdSpec), ("length", ctypes.c_long), ("value", ctypes.c_void_p)]


XRES_CLIENT_ID_PID_MASK = 1 << 1


class _Event(ctypes.Union):
    _fields_ = [("xclient", _ClientMessage), ("pad", ctypes.c_long * 24)]


def _xlib() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    lib.XDefaultRootWindow.restype = ctypes.c_ulong
    lib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    lib.XInternAtom.restype = ctypes.c_ulong
    lib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.XGetWindowProperty.argtypes = [
        ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long, ctypes.c_long, ctypes.c_int,
        ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
    ]  # fmt: skip
    lib.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.XFree.argtypes = [ctypes.c_void_p]
    lib.XFlush.argtypes = [ctypes.c_void_p]
    lib.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return lib


def _xres() -> ctypes.CDLL | None:
    """libXRes (the X-Resource extension's client side: which process owns a window); xfwm4 needs it
    too, so an XFCE desktop has it. None where it is missing: windows are then known by _NET_WM_PID."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("XRes") or "libXRes.so.1")
    except OSError:
        return None
    lib.XResQueryClientIds.argtypes = [
        ctypes.c_void_p, ctypes.c_long, ctypes.POINTER(_ClientIdSpec), ctypes.POINTER(ctypes.c_long),
        ctypes.POINTER(ctypes.POINTER(_ClientIdValue)),
    ]  # fmt: skip
    lib.XResGetClientPid.argtypes = [ctypes.POINTER(_ClientIdValue)]
    lib.XResGetClientPid.restype = ctypes.c_int
    lib.XResClientIdsDestroy.argtypes = [ctypes.c_long, ctypes.POINTER(_ClientIdValue)]
    return lib


class Display:
    def __init__(self) -> None:
        self.x = _xlib()
        self.dpy = self.x.XOpenDisplay(None)
        if not self.dpy:
            raise OSError(f"cannot open display {os.environ.get('DISPLAY', '(unset)')}")
        self.root = self.x.XDefaultRootWindow(self.dpy)
        self.xres = _xres()

    def close(self) -> None:
        self.x.XCloseDisplay(self.dpy)

    def atom(self, name: str) -> int:
        return int(self.x.XInternAtom(self.dpy, name.encode(), 0))

    def _cardinals(self, window: int, name: str) -> list[int]:
        """A format-32 property (Xlib hands those out as C longs), empty when the window has none."""
        actual_type, actual_format = ctypes.c_ulong(), ctypes.c_int()
        count, after = ctypes.c_ulong(), ctypes.c_ulong()
        data = ctypes.POINTER(ctypes.c_ulong)()
        status = self.x.XGetWindowProperty(
            self.dpy, window, self.atom(name), 0, 4096, 0, ANY_TYPE, ctypes.byref(actual_type),
            ctypes.byref(actual_format), ctypes.byref(count), ctypes.byref(after), ctypes.byref(data),
        )  # fmt: skip
        try:
            if status != 0 or actual_format.value != 32 or not data:
                return []
            return [int(data[i]) for i in range(count.value)]
        finally:
            if data:
                self.x.XFree(data)

    def owner(self, window: int) -> int:
        """The PID of the process whose X connection made ``window`` (the X server knows it for local
        clients), else the one the window names (_NET_WM_PID); 0 when neither says."""
        if self.xres is not None:
            spec = _ClientIdSpec(window, XRES_CLIENT_ID_PID_MASK)
            count, ids = ctypes.c_long(), ctypes.POINTER(_ClientIdValue)()
            asked = self.xres.XResQueryClientIds(
                self.dpy, 1, ctypes.byref(spec), ctypes.byref(count), ctypes.byref(ids)
            )
            if asked == 0:
                try:
                    for i in range(count.value):
                        pid = self.xres.XResGetClientPid(ctypes.byref(ids[i]))
                        if pid > 0:
                            return int(pid)
                finally:
                    self.xres.XResClientIdsDestroy(count, ids)
        return (self._cardinals(window, "_NET_WM_PID") or [0])[0]

    def client_windows(self) -> dict[int, int]:
        """Each top-level window the window manager manages, with its program's PID (0: unknown)."""
        return {w: self.owner(w) for w in self._cardinals(self.root, "_NET_CLIENT_LIST")}

    def _ask(self, window: int, message: str, *data: int) -> None:
        event = _Event()
        event.xclient.type = CLIENT_MESSAGE
        event.xclient.window = window
        event.xclient.message_type = self.atom(message)
        event.xclient.format = 32
        for i, value in enumerate(data):
            event.xclient.data[i] = value
        mask = SUBSTRUCTURE_REDIRECT | SUBSTRUCTURE_NOTIFY
        self.x.XSendEvent(self.dpy, self.root, 0, mask, ctypes.byref(event))

    def maximize(self, window: int) -> None:
        """Ask the window manager to maximize ``window`` and give it the focus."""
        vert, horz = self.atom("_NET_WM_STATE_MAXIMIZED_VERT"), self.atom("_NET_WM_STATE_MAXIMIZED_HORZ")
        self._ask(window, "_NET_WM_STATE", STATE_ADD, vert, horz, 2)  # 2: on behalf of the user
        self._ask(window, "_NET_ACTIVE_WINDOW", 2, 0, 0)
        self.x.XSync(self.dpy, 0)

    def state(self, window: int) -> set[str]:
        names = {self.atom(n): n for n in ("_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ")}
        return {names[a] for a in self._cardinals(window, "_NET_WM_STATE") if a in names}


def descendants(pid: int, proc: Path = Path("/proc")) -> set[int]:
    """``pid`` and every process below it."""
    parents: dict[int, int] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    return family


def maximize_when_shown(pid: int, timeout: float, poll: float = 0.2) -> int | None:
    """Wait for a window of ``pid`` (or of a program it started) and maximize it; its id, or None."""
    display = Display()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            family = descendants(pid)
            for window, owner in display.client_windows().items():
                if owner in family:
                    display.maximize(window)
                    return window
            time.sleep(poll)
        return None
    finally:
        display.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_vnc.xwindows")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("maximize", help="maximize the first window of PID once it is shown")
    m.add_argument("pid", type=int)
    m.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    window = maximize_when_shown(args.pid, args.timeout)
    if window is None:
        print(f"no window of process {args.pid} within {args.timeout:g} s", file=sys.stderr)
        return 1
    print(f"0x{window:x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
