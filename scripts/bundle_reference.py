"""Copy the public CMS reference files that claimscrub ships into reference/data.

The RVU files keep their official layouts, with the descriptions emptied (the DESCRIPTION column of the CSV,
positions 8-57 of the fixed-width records; the HDR lines stay): the CPT descriptors are AMA copyright and the
scrubber never needs them. Larger files are gzipped (with no time stamp, so that the same source gives the same
bytes); the loaders read either form.

    python scripts/bundle_reference.py PATH/TO/reference-data
"""

import csv
import gzip
import io
import shutil
import sys
from pathlib import Path

DEST = Path(__file__).resolve().parent.parent / "reference" / "data"

COPY_AS_IS = [
    "pfs/GPCI2025.csv",
    "pfs/GPCI2026.csv",
    "pfs/25LOCCO.csv",
    "ncci/ncci_ptp_practitioner_2024Q2_v301r0.csv.gz",
    "ncci/ncci_ptp_practitioner_2024Q3.csv.gz",
    "ncci/ncci_mue_practitioner_2024-07-01.csv",
    "carc_rarc/carc_codes.csv",
    "carc_rarc/rarc_codes.csv",
    "carc_rarc/claim_adjustment_group_codes.csv",
    # no CPT descriptors: its notes name codes and manual sections only
    "ncci/AOC_V2026Q2-MCR.xlsx",
]
GZIP = ["pfs/ZIP5_OCT2025.txt", "ncci/ncci_mue_all_services_2024Q2.csv"]
GZIP_STABLE = ["ncci/MCR_MUE_PractitionerServices_Eff_04-01-2026.csv", "ncci/ncci_aoc_2024-06.csv"]
# positions 8-57 of a fixed-width RVU record (from 0: 7 to 57)
RVU_TXT_DESCRIPTION = slice(7, 57)


def strip_descriptions(src: Path, dest: Path) -> None:
    text = src.read_text(encoding="latin-1")
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    for number, row in enumerate(rows):
        if number >= 10 and len(row) > 2:
            row[2] = ""
        writer.writerow(row)
    with gzip.open(dest, "wt", encoding="latin-1", newline="") as fh:
        fh.write(out.getvalue())


def gzip_stable(data: bytes, dest: Path) -> None:
    with open(dest, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
        fh.write(data)


def strip_fixed_width_descriptions(src: Path, dest: Path) -> None:
    lines = src.read_bytes().decode("latin-1").splitlines(keepends=True)
    blank = " " * (RVU_TXT_DESCRIPTION.stop - RVU_TXT_DESCRIPTION.start)
    out = [line if line.startswith("HDR") else line[:RVU_TXT_DESCRIPTION.start] + blank + line[RVU_TXT_DESCRIPTION.stop:]
           for line in lines]
    gzip_stable("".join(out).encode("latin-1"), dest)


def main(source: str) -> None:
    root = Path(source)
    DEST.mkdir(parents=True, exist_ok=True)
    for rel in COPY_AS_IS:
        shutil.copyfile(root / rel, DEST / Path(rel).name)
    for rel in GZIP:
        with open(root / rel, "rb") as src, gzip.open(DEST / (Path(rel).name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    for rel in GZIP_STABLE:
        gzip_stable((root / rel).read_bytes(), DEST / (Path(rel).name + ".gz"))
    strip_descriptions(root / "pfs/PPRRVU2025_Oct.csv", DEST / "PPRRVU2025_Oct.csv.gz")
    strip_fixed_width_descriptions(root / "pfs/PPRRVU2026_Apr_nonQPP.txt", DEST / "PPRRVU2026_Apr_nonQPP.txt.gz")


if __name__ == "__main__":
    main(sys.argv[1])
