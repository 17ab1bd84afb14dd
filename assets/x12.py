"""X12 5010 readers: 837P professional claims in (one row per service line, under the canonical column
names of INTERFACE.md) and 835 remittances back (claim payments, service lines and their adjustments).

The grammar needed here is the envelope (ISA/GS/ST and their trailers, with the separators the ISA
declares) and the loop context of a handful of segments, so the files are tokenised here rather than
through a full implementation-guide parser: see the README for why pyx12 was not used.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .readers import CANONICAL, InputFileError

ISA_LENGTH = 106
SEGMENT_ID = re.compile(r"[A-Z0-9]{2,3}")
# Qualifiers of the HI composites that carry diagnoses (ICD-10-CM principal/other, ICD-9 the same).
DIAGNOSIS_QUALIFIERS = {"ABK", "ABF", "BK", "BF"}
PROFESSIONAL_GUIDE = "005010X222"


@dataclass
class Segment:
    number: int  # 1-based position in the file, ISA of the first interchange = 1
    id: str
    elements: list[str]

    def get(self, position: int) -> str:
        """Element `position` (1-based, as the implementation guides number them), '' where absent."""
        return self.elements[position].strip() if position < len(self.elements) else ""


@dataclass
class Interchange:
    element: str
    component: str
    segments: list[Segment] = field(default_factory=list)

    def parts(self, value: str) -> list[str]:
        return [p.strip() for p in value.split(self.component)]


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.lstrip("\ufeff \t\r\n")


def read_interchanges(path: Path) -> list[Interchange]:
    """Every interchange of a file, its separators taken from its own ISA. Raises InputFileError on a file
    that is not X12: no ISA, a malformed ISA, segments outside an envelope, or unmatched trailers."""
    text = _text(path)
    interchanges: list[Interchange] = []
    number = 0
    while text:
        if not text.startswith("ISA") or len(text) < ISA_LENGTH:
            raise _invalid(path, f"segment {number + 1} should open an interchange (ISA)")
        element, component, terminator = text[3], text[104], text[105]
        if element.isalnum() or terminator.isalnum() or len(text[:ISA_LENGTH - 1].split(element)) != 17:
            raise _invalid(path, f"the ISA at segment {number + 1} is not 106 characters with 16 elements")
        interchange = Interchange(element, component)
        open_group = open_set = None
        closed = False
        position = 0
        for raw in _split(text, terminator):
            position += len(raw) + 1
            segment_text = raw.strip()
            if not segment_text:
                continue
            number += 1
            elements = segment_text.split(element)
            segment = Segment(number, elements[0], elements)
            if not SEGMENT_ID.fullmatch(segment.id):
                raise _invalid(path, f"segment {number} ({segment_text[:20]!r}) has no segment id")
            interchange.segments.append(segment)
            if segment.id == "GS":
                open_group = segment.get(6)
            elif segment.id == "ST":
                if open_group is None:
                    raise _invalid(path, f"segment {number}: ST outside a functional group (GS)")
                open_set = segment.get(2)
            elif segment.id == "SE":
                if open_set is None or segment.get(2) != open_set:
                    raise _invalid(path, f"segment {number}: SE does not close the open transaction set")
                open_set = None
            elif segment.id == "GE":
                if open_group is None or open_set is not None or segment.get(2) != open_group:
                    raise _invalid(path, f"segment {number}: GE does not close the open functional group")
                open_group = None
            elif segment.id == "IEA":
                isa13 = interchange.segments[0].get(13)
                if open_group is not None or segment.get(2) != isa13:
                    raise _invalid(path, f"segment {number}: IEA does not close interchange {isa13}")
                closed = True
                break
            elif segment.id == "ISA" and len(interchange.segments) > 1:
                raise _invalid(path, f"segment {number}: ISA before the previous interchange's IEA")
            elif segment.id != "ISA" and open_set is None:
                raise _invalid(path, f"segment {number} ({segment.id}) is outside a transaction set (ST/SE)")
        if not closed:
            raise _invalid(path, "the file ends before the interchange trailer (IEA)")
        interchanges.append(interchange)
        text = text[position:].lstrip(" \t\r\n")
    return interchanges


def _split(text: str, terminator: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = text.find(terminator, start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def _invalid(path: Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: not a valid X12 file: {reason}")


def transactions(interchanges: list[Interchange]) -> Iterator[tuple[Interchange, str, str, list[Segment]]]:
    """(interchange, transaction set id, implementation guide, segments from ST to SE) of every set."""
    for interchange in interchanges:
        guide = ""
        current: list[Segment] | None = None
        for segment in interchange.segments:
            if segment.id == "GS":
                guide = segment.get(8)
            elif segment.id == "ST":
                current = [segment]
            elif current is not None:
                current.append(segment)
                if segment.id == "SE":
                    yield interchange, current[0].get(1), current[0].get(3) or guide, current
                    current = None


def _require(path: Path, interchanges: list[Interchange], wanted: str, what: str) -> None:
    found = {(ts, guide) for _, ts, guide, _ in transactions(interchanges)}
    if not any(ts == wanted and (wanted != "837" or guide.startswith(PROFESSIONAL_GUIDE)) for ts, guide in found):
        kinds = ", ".join(sorted(f"{ts} ({guide})" if guide else ts for ts, guide in found)) or "none"
        raise InputFileError(f"{path}: X12 file holds no {what} (transaction sets found: {kinds})")


def inspect_837p(path: Path) -> None:
    """Fail fast on a file that is not X12 or holds no 837P."""
    _require(path, read_interchanges(path), "837", "837P professional claim")


# ---------------------------------------------------------------------------------------------------- 837P


def _date(segment: Segment) -> str:
    """A DTP date as CCYYMMDD; the first day of a range (RD8)."""
    return segment.get(3).split("-")[0]


def claim_rows_837p(path: Path) -> list[dict]:
    """One dict per 837P service line (SV1), with the canonical columns and source_row = SV1's segment number.

    Values stay text: the validate stage judges them, so a line that cannot be scrubbed is quarantined with
    its reasons like a row of a CSV export."""
    interchanges = read_interchanges(path)
    _require(path, interchanges, "837", "837P professional claim")
    rows: list[dict] = []
    for interchange, set_id, guide, segments in transactions(interchanges):
        if set_id == "837" and guide.startswith(PROFESSIONAL_GUIDE):
            rows.extend(_professional_lines(path, interchange, segments))
    return rows


def _professional_lines(path: Path, interchange: Interchange, segments: list[Segment]) -> Iterator[dict]:
    hl_levels: dict[str, dict] = {}  # HL01 -> what its loops said, merged over its parents
    hl: dict = {}
    claim: dict | None = None
    line: dict | None = None
    entity = ""  # NM101 of the latest NM1, which the N3/N4 after it belong to
    in_cob = False  # past the claim's first 2320 (other subscriber) loop, whose NM1s are not ours

    def row() -> dict:
        sv1 = line["sv1"]
        procedure = interchange.parts(sv1.get(1)) if sv1 is not None else []
        modifiers = (procedure[2:6] + [""] * 4)[:4]
        values = {
            "claim_id": claim["claim_id"],
            "line_number": line["line_number"],
            "patient_id": hl.get("patient_id", ""),
            "date_of_service": line["dos"] or claim["dos"],
            "hcpcs": procedure[1] if len(procedure) > 1 else "",
            "units": sv1.get(4) if sv1 is not None else "",
            "modifier_1": modifiers[0], "modifier_2": modifiers[1],
            "modifier_3": modifiers[2], "modifier_4": modifiers[3],
            "charge": sv1.get(2) if sv1 is not None else "",
            "rendering_npi": line["rendering"] or claim["rendering"] or hl.get("billing_npi", ""),
            "billing_npi": hl.get("billing_npi", ""),
            "place_of_service": (sv1.get(5) if sv1 is not None else "") or claim["pos"],
            "claim_type": "professional",
            "diagnoses": ",".join(claim["diagnoses"]),
            "payer": hl.get("payer", ""),
            "service_zip": claim["zip"],
        }
        record = {name: (values.get(name) or None) for name in CANONICAL}
        record["source_row"] = sv1.number if sv1 is not None else line["segment"]
        return record

    for segment in segments:
        sid = segment.id
        if sid in ("HL", "CLM", "LX", "SE") and line is not None:
            if claim is not None:
                yield row()
            line = None
        if sid == "HL":
            hl = {**hl_levels.get(segment.get(2), {}), "level": segment.get(3)}
            hl_levels[segment.get(1)] = hl
            claim, entity = None, ""
        elif sid == "CLM":
            facility = interchange.parts(segment.get(5))
            claim = {"claim_id": segment.get(1), "pos": facility[0], "diagnoses": [], "dos": "",
                     "rendering": "", "zip": ""}
            in_cob, entity = False, ""
        elif sid == "SV1" and line is None:
            if claim is None:
                raise InputFileError(f"{path}: not a valid 837P file: SV1 at segment {segment.number} is "
                                     "outside a claim (CLM)")
            # A service line without its LX still counts: it is quarantined for its missing line number.
            line = {"line_number": "", "segment": segment.number, "sv1": segment, "dos": "", "rendering": ""}
        elif claim is None:
            if sid == "NM1":
                entity = segment.get(1)
                if entity == "85":
                    hl["billing_npi"] = segment.get(9)
                elif entity == "IL":
                    hl["patient_id"] = segment.get(9)
                elif entity == "PR":
                    hl["payer"] = segment.get(3)
        elif sid == "LX":
            line = {"line_number": segment.get(1), "segment": segment.number, "sv1": None, "dos": "",
                    "rendering": ""}
        elif line is not None:
            if sid == "SV1":
                line["sv1"] = segment
            elif sid == "DTP" and segment.get(1) == "472":
                line["dos"] = _date(segment)
            elif sid == "NM1" and segment.get(1) == "82":
                line["rendering"] = segment.get(9)
        elif sid == "SBR":
            in_cob = True
        elif in_cob:
            continue
        elif sid == "HI":
            for composite in segment.elements[1:]:
                parts = interchange.parts(composite)
                if len(parts) > 1 and parts[0] in DIAGNOSIS_QUALIFIERS and parts[1]:
                    claim["diagnoses"].append(parts[1])
        elif sid == "DTP" and segment.get(1) == "472":
            claim["dos"] = _date(segment)
        elif sid == "NM1":
            entity = segment.get(1)
            if entity == "82":
                claim["rendering"] = segment.get(9)
        elif sid == "N4" and entity == "77":
            claim["zip"] = segment.get(3)[:5]


def stage_837p(con, path: Path, table: str, batch_id: str, file_index: int, name: str) -> int:
    """Land one 837P file's service lines in `table` (raw_claim_rows) as text; returns the count."""
    import pandas as pd

    records = [{"batch_id": batch_id, "file_index": file_index, "source_file": name, **row}
               for row in claim_rows_837p(path)]
    frame = pd.DataFrame.from_records(
        records, columns=["batch_id", "file_index", "source_file", "source_row", *CANONICAL]
    ).astype({c: "object" for c in CANONICAL})
    con.register("incoming_x12_rows", frame)
    try:
        con.execute(f"insert into {table} by name select * from incoming_x12_rows")
    finally:
        con.unregister("incoming_x12_rows")
    return len(records)


# ----------------------------------------------------------------------------------------------------- 835


@dataclass
class Remittance:
    """What one 835 file says: claim payments (CLP), their service lines (SVC) and adjustments (CAS)."""

    claims: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    adjustments: list[dict] = field(default_factory=list)


def _amount(value: str) -> str | None:
    return value or None


def read_835(path: Path) -> Remittance:
    interchanges = read_interchanges(path)
    _require(path, interchanges, "835", "835 remittance")
    remit = Remittance()
    for interchange, set_id, _, segments in transactions(interchanges):
        if set_id == "835":
            _remittance(interchange, segments, remit)
    return remit


def _remittance(interchange: Interchange, segments: list[Segment], remit: Remittance) -> None:
    payer = ""
    claim: dict | None = None
    line: dict | None = None
    for segment in segments:
        sid = segment.id
        if sid == "N1" and segment.get(1) == "PR":
            payer = segment.get(2)
        elif sid == "CLP":
            claim = {"claim_seq": len(remit.claims) + 1, "claim_id": segment.get(1), "status": segment.get(2),
                     "charge": _amount(segment.get(3)), "paid": _amount(segment.get(4)), "payer": payer,
                     "segment": segment.number, "lines": 0}
            remit.claims.append(claim)
            line = None
        elif sid in ("PLB", "SE"):
            claim = line = None
        elif claim is None:
            continue
        elif sid == "SVC":
            billed = interchange.parts(segment.get(1))
            submitted = interchange.parts(segment.get(6)) if segment.get(6) else billed
            claim["lines"] += 1
            line = {"line_seq": len(remit.lines) + 1, "claim_seq": claim["claim_seq"],
                    "claim_id": claim["claim_id"], "position": claim["lines"],
                    "hcpcs": submitted[1] if len(submitted) > 1 else "",
                    "paid_hcpcs": billed[1] if len(billed) > 1 else "",
                    "modifiers": ",".join(m for m in submitted[2:6] if m),
                    "charge": _amount(segment.get(2)), "paid": _amount(segment.get(3)),
                    "units": _amount(segment.get(5)), "ref_6r": None, "service_date": None,
                    "payer": payer, "segment": segment.number}
            remit.lines.append(line)
        elif sid == "CAS":
            group = segment.get(1)
            for start in range(2, 20, 3):
                carc = segment.get(start)
                if carc:
                    remit.adjustments.append(
                        {"claim_seq": claim["claim_seq"], "line_seq": line["line_seq"] if line else None,
                         "group_code": group, "carc": carc, "amount": _amount(segment.get(start + 1)),
                         "quantity": _amount(segment.get(start + 2)), "segment": segment.number})
        elif line is not None and sid == "REF" and segment.get(1) == "6R":
            line["ref_6r"] = segment.get(2)
        elif line is not None and sid == "DTM" and segment.get(1) in ("472", "150"):
            line["service_date"] = line["service_date"] or segment.get(2)
