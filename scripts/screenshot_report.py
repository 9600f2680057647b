"""Write the report of a results directory and save a screenshot of it (for the README).

    .venv/bin/python scripts/screenshot_report.py RESULTS_DIR [--out docs/report-screenshot.png]
        [--max-height PX]

Why a script: the README's picture should be the real page as a browser draws it, rendered by
the same headless Chromium the browser test uses, so it is redone in one command.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ggufprof.present.report import write_report  # noqa: E402
from ggufprof.present.report.browser import full_page_png, images, open_chromium, severe_console_entries  # noqa: E402


def shrink(png: Path, colors: int) -> None:
    """A palette PNG: a third of the bytes for a page of flat colours (octree keeps the plot colours)."""
    from PIL import Image  # Pillow comes with matplotlib

    with Image.open(png) as im:
        q = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    q.save(png, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", type=Path, nargs="+", help="result directories (one model)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    ap.add_argument("--report-dir", type=Path, default=None, help="where to write the report (default: a temp dir)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--max-height", type=int, default=None, help="cut the page at this height (CSS pixels)")
    ap.add_argument("--colors", type=int, default=256, help="palette size for a smaller PNG (0: full colour)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ggufprof-shot-") as tmp:
        written = write_report(args.results, args.report_dir or Path(tmp) / "report")
        driver = open_chromium(Path(tmp) / "profile", args.width)
        try:
            driver.get(written["html"].resolve().as_uri())
            bad = [i for i in images(driver) if not i["naturalWidth"]]
            errors = severe_console_entries(driver)
            if bad or errors:
                print(f"warning: {len(bad)} broken image(s), console errors: {errors}", file=sys.stderr)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            full_page_png(driver, args.out, args.width, args.max_height)
        finally:
            driver.quit()
    if args.colors:
        shrink(args.out, args.colors)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
