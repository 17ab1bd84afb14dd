"""Copy the public CMS reference files that claimscrub ships into reference/data.

The RVU file keeps its official layout, with the DESCRIPTION column emptied: the CPT descriptors are
AMA copyright and the scrubber never needs them. Larger files are gzipped; the loaders read either form.

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
    "pfs/25LOCCO.csv",
    "ncci/ncci_ptp_practitioner_2024Q2_v301r0.csv.gz",
    "ncci/ncci_ptp_practitioner_2024Q3.csv.gz",
    "ncci/ncci_mue_practitioner_2024-07-01.csv",
    "carc_rarc/carc_codes.csv",
    "carc_rarc/rarc_codes.csv",
    "carc_rarc/claim_adjustment_group_codes.csv",
]
GZIP = ["pfs/ZIP5_OCT2025.txt", "ncci/ncci_mue_all_services_2024Q2.csv"]


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


def main(source: str) -> None:
    root = Path(source)
    DEST.mkdir(parents=True, exist_ok=True)
    for rel in COPY_AS_IS:
        shutil.copyfile(root / rel, DEST / Path(rel).name)
    for rel in GZIP:
        with open(root / rel, "rb") as src, gzip.open(DEST / (Path(rel).name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    strip_descriptions(root / "pfs/PPRRVU2025_Oct.csv", DEST / "PPRRVU2025_Oct.csv.gz")


if __name__ == "__main__":
    main(sys.argv[1])
