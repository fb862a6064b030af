"""The pretest report opens in headless Chromium without errors, and its plots are drawn.

The report of a seeded synthetic run is loaded from a ``file://`` URL. The test checks
that the page logs no error and throws nothing, that each inline SVG chart has a real
size on the page, that the worst-calls table sorts when its header is clicked, and that
screenshots show the plots: each chart's PNG holds its series' colours (decoded here
with a small PNG reader), and the whole page's PNG is sane and not one colour.
"""

from __future__ import annotations

import base64
import pathlib
import struct
import zlib

import numpy as np
import numpy.typing as npt

from tests.lab.report.synth import make_run
from trunkline.lab.report import write_reports
from trunkline.lab.report.html import FAILURE_COLOR, SETUP_COLOR
from trunkline.lab.report.html_plots import PALETTE

from .cdp import Page

VIEWPORT = (1100, 1400)
CHART_BOXES = """
Array.from(document.querySelectorAll("svg.chart")).map(function (svg) {
  var r = svg.getBoundingClientRect();
  return {title: svg.querySelector("title").textContent, x: r.left + window.scrollX,
          y: r.top + window.scrollY, width: r.width, height: r.height};
})
"""
#: The colours each chart must show, in screenshot pixels (RGB), and how many at least.
CHART_COLOURS = {
    "Turn latency over time": (PALETTE[0], PALETTE[1]),
    "Active calls": (PALETTE[2],),
    "Failures by category": (FAILURE_COLOR, SETUP_COLOR),
    "Task success by scenario": (PALETTE[1],),  # every synthetic scenario is below 85%
}
MIN_PIXELS = 40  # a line 2 px wide and 20 px long; the bars have thousands


def paeth_row(row: bytearray, previous: bytearray, channels: int) -> None:
    """Undo the Paeth filter in place; each byte depends on the one before, so a loop."""
    for i in range(len(row)):
        a = row[i - channels] if i >= channels else 0
        b = previous[i]
        c = previous[i - channels] if i >= channels else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF


def decode_png(data: bytes) -> npt.NDArray[np.uint8]:
    """The pixels (height x width x RGB) of an 8-bit RGB or RGBA non-interlaced PNG, what
    Chromium writes: enough of the format (RFC 2083) for a test, nothing more."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1), "truncated image data"
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        if kind == 1:  # Sub: a running sum along each channel
            row = row.reshape(width, channels).cumsum(axis=0).reshape(stride)
        elif kind == 2:  # Up
            row = row + previous
        elif kind in (3, 4):
            buf = bytearray(row.astype(np.uint8).tobytes())
            prev = bytearray(previous.astype(np.uint8).tobytes())
            if kind == 4:
                paeth_row(buf, prev, channels)
            else:
                for i in range(stride):
                    left = buf[i - channels] if i >= channels else 0
                    buf[i] = (buf[i] + (left + prev[i]) // 2) & 0xFF
            row = np.frombuffer(bytes(buf), np.uint8).astype(np.int64)
        row &= 0xFF
        out[y] = row
        previous = row
    return out.reshape(height, width, channels)[:, :, :3]


def colour_count(image: npt.NDArray[np.uint8]) -> int:
    """How many different colours ``image`` holds."""
    packed = image.astype(np.uint32)
    return len(np.unique((packed[:, :, 0] << 16) | (packed[:, :, 1] << 8) | packed[:, :, 2]))


def pixels_of(image: npt.NDArray[np.uint8], colour: str) -> int:
    """How many pixels of ``image`` are exactly ``colour`` (``#rrggbb``)."""
    want = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
    return int(np.all(image == want, axis=2).sum())


async def screenshot(page: Page, box: dict[str, float], scale: float = 1.0) -> bytes:
    """A PNG of ``box`` (page coordinates), wherever it is on the page."""
    clip = {key: box[key] for key in ("x", "y", "width", "height")}
    result = await page.send(
        "Page.captureScreenshot",
        format="png",
        clip={**clip, "scale": scale},
        captureBeyondViewport=True,
        optimizeForSpeed=True,  # Chromium then filters every row with Up: quick to decode
    )
    return base64.b64decode(result["data"])


async def test_report_html_opens_cleanly_and_shows_its_plots(
    page: Page, tmp_path: pathlib.Path
) -> None:
    run = make_run(seed=7, calls=300)
    write_reports(run, tmp_path)
    width, height = VIEWPORT
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    await page.navigate((tmp_path / "report.html").as_uri())

    boxes = await page.evaluate(CHART_BOXES)
    assert [b["title"] for b in boxes] == list(CHART_COLOURS)
    for box in boxes:
        assert box["width"] > 600 and box["height"] > 150, box

    for box in boxes:
        image = decode_png(await screenshot(page, box))
        assert image.shape[:2] == (round(box["height"]), round(box["width"]))
        assert colour_count(image) > 10, f"{box['title']} is nearly blank"
        for colour in CHART_COLOURS[box["title"]]:
            assert pixels_of(image, colour) >= MIN_PIXELS, (box["title"], colour)

    # The worst-calls table sorts by its "worst turn" column, slowest first, on a click.
    order = """Array.from(document.querySelectorAll("#worst tbody tr"))
                 .map(function (r) { return parseFloat(r.cells[4].dataset.v); })"""
    before = await page.evaluate(order)
    await page.evaluate("""document.querySelectorAll("#worst th[data-sort]")[3].click()""")
    after = await page.evaluate(order)
    assert sorted(before, reverse=True) == after != before

    # The whole page, kept beside the report for a person to look at; its PNG header must
    # give the page's size. A quarter-scale copy is decoded (a full one takes seconds in
    # Python) to see that the page is not one colour.
    full_height = await page.evaluate("document.documentElement.scrollHeight")
    whole = {"x": 0, "y": 0, "width": width, "height": full_height}
    png = await screenshot(page, whole)
    (tmp_path / "report.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (width, full_height)
    assert 2000 < full_height < 10_000
    small = decode_png(await screenshot(page, whole, scale=0.25))
    assert small.shape[:2] == (round(full_height / 4), round(width / 4))
    assert colour_count(small) > 100  # not one colour
    assert page.errors == []
