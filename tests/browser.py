"""Debian's Chromium driven by Playwright, the way the browser tests need it (never a downloaded one)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
# Flags that work on these machines: no sandbox as root, no GPU, and no background connections
# (the network is closed and Chromium would retry them endlessly).
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (devstack/install installs Debian's chromium)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


# Distinct colours in a horizontal band of the noVNC canvas (read in the page, no image library needed).
CANVAS_COLOURS = """([y0, y1, selector]) => {
  const canvas = document.querySelector(selector || 'canvas');
  if (!canvas || !canvas.width) return 0;
  const ctx = canvas.getContext('2d');
  const h = Math.max(1, Math.min(y1, canvas.height) - y0);
  const data = ctx.getImageData(0, y0, canvas.width, h).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return seen.size;
}"""
