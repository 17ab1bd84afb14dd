"""Regenerate docs/report-summary.png and docs/report-worklist.png: the Summary page and the first Worklist page of
the sample's workbook, as LibreOffice prints them.

Scrubs two invented earlier nights of the same export (named like it, with their dates: the trend compares runs
of one source) and then the bundled sample into a scratch database, so that the Summary shows the trend too;
converts the workbook to PDF with LibreOffice, finds the Worklist's first page by its caption with pdftotext, and
turns each page into PNG with pdftoppm. Needs `libreoffice` (Debian: libreoffice-calc) and poppler's `pdftoppm`
and `pdftotext` (poppler-utils); the tests do not.

    .venv/bin/python scripts/render_report_pages.py
"""

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "claims_sample.csv"
SUMMARY_PNG = ROOT / "docs" / "report-summary.png"
WORKLIST_PNG = ROOT / "docs" / "report-worklist.png"
# The Worklist's caption, which opens its first printed page.
WORKLIST_CAPTION = "with a deny finding not dismissed or fixed"
# The sample's planted problems: copied onto new claims, they make the earlier nights' duplicates.
PLANTED = [f"CLM00{n}" for n in range(141, 157)]


def earlier_night(path: Path, copies: int) -> Path:
    """The sample plus `copies` planted claims billed a second time under a new claim id."""
    with open(SAMPLE, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    again = [[f"{row[0]}R", *row[1:]] for row in rows[1:] if row[0] in PLANTED[:copies]]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows + again)
    return path


def page_with(pdf: Path, text: str) -> int:
    """The number of the first page of `pdf` that holds `text`."""
    pages = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                           text=True).stdout.split("\f")
    return next(number for number, page in enumerate(pages, 1) if text in page)


def to_png(pdf: Path, page: int, png: Path, dpi: int) -> None:
    subprocess.run(["pdftoppm", "-f", str(page), "-l", str(page), "-singlefile", "-png", "-r", str(dpi),
                    str(pdf), str(png.with_suffix(""))], check=True)
    print(f"wrote {png.relative_to(ROOT)}")


def main() -> None:
    for tool in ("libreoffice", "pdftoppm", "pdftotext"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install libreoffice-calc poppler-utils)")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        env = {**os.environ, "CLAIMSCRUB_HOME": str(work / "home"),
               "CLAIMSCRUB_SECRET": "report-summary-example"}
        nights = [earlier_night(work / "claims_sample_2024-08-14.csv", 12),
                  earlier_night(work / "claims_sample_2024-08-15.csv", 6), SAMPLE]
        for night in nights:
            subprocess.run([sys.executable, "-m", "pipelines.cli", "scrub", str(night),
                            "--out", str(work / "out"), "--db", str(work / "claimscrub.duckdb")],
                           cwd=ROOT, env=env, check=True)
        subprocess.run(["libreoffice", f"-env:UserInstallation=file://{work / 'office'}", "--headless",
                        "--convert-to", "pdf", "--outdir", str(work),
                        str(work / "out" / "denial-risk-report.xlsx")], check=True, stdout=subprocess.DEVNULL)
        pdf = work / "denial-risk-report.pdf"
        to_png(pdf, 1, SUMMARY_PNG, 110)
        to_png(pdf, page_with(pdf, WORKLIST_CAPTION), WORKLIST_PNG, 130)


if __name__ == "__main__":
    main()
