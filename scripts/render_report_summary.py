"""Regenerate docs/report-summary.png: the Summary page of the sample's workbook, as LibreOffice prints it.

Scrubs two invented earlier nights and then the bundled sample into a scratch database, so that the
page shows the trend too; converts the workbook to PDF with LibreOffice and the first page to PNG with
pdftoppm. Needs `libreoffice` (Debian: libreoffice-calc) and `pdftoppm` (poppler-utils); the tests do not.

    .venv/bin/python scripts/render_report_summary.py
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
PNG = ROOT / "docs" / "report-summary.png"
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


def main() -> None:
    for tool in ("libreoffice", "pdftoppm"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install libreoffice-calc poppler-utils)")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        env = {**os.environ, "CLAIMSCRUB_HOME": str(work / "home"),
               "CLAIMSCRUB_SECRET": "report-summary-example"}
        nights = [earlier_night(work / "claims_2024-08-14.csv", 12),
                  earlier_night(work / "claims_2024-08-15.csv", 6), SAMPLE]
        for night in nights:
            subprocess.run([sys.executable, "-m", "pipelines.cli", "scrub", str(night),
                            "--out", str(work / "out"), "--db", str(work / "claimscrub.duckdb")],
                           cwd=ROOT, env=env, check=True)
        subprocess.run(["libreoffice", f"-env:UserInstallation=file://{work / 'office'}", "--headless",
                        "--convert-to", "pdf", "--outdir", str(work),
                        str(work / "out" / "denial-risk-report.xlsx")], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-singlefile", "-png", "-r", "110",
                        str(work / "denial-risk-report.pdf"), str(PNG.with_suffix(""))], check=True)
    print(f"wrote {PNG.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
