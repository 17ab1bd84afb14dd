"""X12 5010 readers: 837P professional claims in (one row per service line, under the canonical column
names of INTERFACE.md) and 835 remittances back (claim payments, service lines and their adjustments).

The grammar needed here is the envelope (ISA/GS/ST and their trailers, with the separators the ISA
declares) and the loop context of a handful of segments, so the files are tokenised here rather than
through a full implementation-guide parser: see the README for why pyx12 was not used.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path

from .columns import CANONICAL, InputFileError

ISA_LENGTH = 106
STAGE_ROWS = 100_000  # service lines per insert: memory stays flat whatever the file's size
SEGMENT_ID = re.compile(r"[A-Z0-9]{2,3}")
# Qualifiers of the HI composites that carry diagnoses (ICD-10-CM principal/other, ICD-9 the same).
DIAGNOSIS_QUALIFIERS = {"ABK", "ABF", "BK", "BF"}
PROFESSIONAL_GUIDE = "005010X222"
# CLM05-3, the claim frequency code (NUBC): 8 voids a claim sent before; its lines bill nothing.
VOID_FREQUENCY = "8"
PROFESSIONAL = "837P professional claim"
REMITTANCE = "835 remittance"


@dataclass(slots=True)
class Separators:
    element: str
    component: str

    def parts(self, value: str) -> list[str]:
        return [p.strip() for p in value.split(self.component)]


@dataclass(slots=True)
class Segment:
    number: int  # 1-based position in the file, ISA of the first interchange = 1
    id: str
    elements: list[str]
    separators: Separators

    def get(self, position: int) -> str:
        """Element `position` (1-based, as the implementation guides number them), '' where absent."""
        return self.elements[position].strip() if position < len(self.elements) else ""

    def parts(self, position: int) -> list[str]:
        """The components of composite element `position`."""
        return self.separators.parts(self.get(position))


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.lstrip("\ufeff \t\r\n")


def _unwrapped(text: str) -> str:
    """The file without its line breaks where they are not its segment terminator: a file wrapped at a fixed
    width (80 columns, as some systems write X12) breaks segments, the ISA among them, anywhere. The terminator
    is the 106th character of the ISA read without line breaks; a terminator is never a letter or digit, so
    when that character is one, the line break before it was the terminator, and the text is kept as it is."""
    head = text[:2 * ISA_LENGTH].replace("\r", "").replace("\n", "")
    if len(head) >= ISA_LENGTH and head.startswith("ISA") and not head[ISA_LENGTH - 1].isalnum():
        return text.replace("\r", "").replace("\n", "")
    return text


def read_segments(path: Path) -> Iterator[Segment]:
    """Every segment of a file, one at a time, each interchange split with the separators of its own ISA.

    Raises InputFileError on a file that is not X12: no ISA, a malformed ISA, a segment outside its
    envelope, or a trailer (SE, GE, IEA) that does not close what its header opened. Segment counts are
    not checked: published test files get them wrong and nothing here depends on them."""
    text = _unwrapped(_text(path))
    number = start = 0
    while start < len(text):
        if not text.startswith("ISA", start) or len(text) - start < ISA_LENGTH:
            raise _invalid(path, f"segment {number + 1} should open an interchange (ISA)")
        isa = text[start:start + ISA_LENGTH]
        element, component, terminator = isa[3], isa[104], isa[105]
        # An ISA cut short takes a character of the next segment (often the element separator) as its
        # terminator: three separators must differ.
        if (element.isalnum() or terminator.isalnum() or len({element, component, terminator}) < 3
                or len(isa[:-1].split(element)) != 17):
            raise _invalid(path, f"the ISA at segment {number + 1} is not 106 characters with 16 elements")
        separators = Separators(element, component)
        control = isa.split(element)[13].strip()
        open_group = open_set = None
        closed = False
        first = number + 1
        while start < len(text) and not closed:
            end = text.find(terminator, start)
            end = len(text) if end < 0 else end
            segment_text = text[start:end].strip()
            start = end + 1
            if not segment_text:
                continue
            number += 1
            elements = segment_text.split(element)
            sid = elements[0]
            if not SEGMENT_ID.fullmatch(sid):
                # Named by its number only: its text may be a patient's name (an NM1 split by a stray terminator).
                raise _invalid(path, f"segment {number} has no segment id (two to three letters and digits "
                                     "before its first element separator)")
            segment = Segment(number, sid, elements, separators)
            if sid == "GS":
                open_group = segment.get(6)
            elif sid == "ST":
                if open_group is None:
                    raise _invalid(path, f"segment {number}: ST outside a functional group (GS)")
                open_set = segment.get(2)
            elif sid == "SE":
                if open_set is None or segment.get(2) != open_set:
                    raise _invalid(path, f"segment {number}: SE does not close the open transaction set")
                open_set = None
            elif sid == "GE":
                if open_group is None or open_set is not None or segment.get(2) != open_group:
                    raise _invalid(path, f"segment {number}: GE does not close the open functional group")
                open_group = None
            elif sid == "IEA":
                if open_group is not None or segment.get(2) != control:
                    raise _invalid(path, f"segment {number}: IEA does not close interchange {control}")
                closed = True
            elif sid == "ISA":
                if number != first:
                    raise _invalid(path, f"segment {number}: ISA before the previous interchange's IEA")
            elif open_set is None:
                raise _invalid(path, f"segment {number} ({sid}) is outside a transaction set (ST/SE)")
            yield segment
        if not closed:
            raise _invalid(path, "the file ends before the interchange trailer (IEA)")
        # What a transfer leaves after the last IEA: line breaks, spaces, a DOS end-of-file mark (Ctrl-Z) or a
        # mainframe's padding of NUL bytes to a record's length.
        while start < len(text) and text[start] in " \t\r\n\x1a\x00":
            start += 1


# The transaction sets a claim file is most often mistaken for, by the guide's number, in a biller's words.
PLAIN_KINDS = {"X223": "institutional claims, 837I", "X224": "dental claims, 837D", "X221": "remittance, 835",
               "X222": "professional claims, 837P"}


def set_kind(set_id: str, guide: str) -> str:
    """A transaction set as a message names it: its id, its guide and, where known, what it holds."""
    plain = next((words for code, words in PLAIN_KINDS.items() if code in guide), "")
    return f"{set_id} ({guide}: {plain})" if plain else f"{set_id} ({guide})" if guide else set_id


def _invalid(path: Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: not a valid X12 file: {reason}")


def transaction_segments(path: Path, wanted: str, what: str) -> Iterator[Segment]:
    """The segments, ST to SE, of every transaction set `wanted` of the file (an 837 only when it is
    professional, 005010X222). Raises InputFileError, once the file is read, if there was none."""
    guide = ""
    found: set[str] = set()
    inside = matched = False
    for segment in read_segments(path):
        if segment.id == "GS":
            guide = segment.get(8)
        elif segment.id == "ST":
            set_id, set_guide = segment.get(1), segment.get(3) or guide
            found.add(set_kind(set_id, set_guide))
            inside = set_id == wanted and (wanted != "837" or set_guide.startswith(PROFESSIONAL_GUIDE))
            matched = matched or inside
        if inside:
            yield segment
            inside = segment.id != "SE"
    if not matched:
        kinds = ", ".join(sorted(found)) or "none"
        raise InputFileError(f"{path}: X12 file holds no {what} (transaction sets found: {kinds})")


def inspect_837p(path: Path) -> None:
    """Fail fast on a file that is not X12 or holds no 837P."""
    for _ in transaction_segments(path, "837", PROFESSIONAL):
        pass


# What becomes of a line billed over a range of days (an 837P RD8 date, an export's "To Date" column).
RANGE_JUDGED = ("a line is judged on the first day of its range, and all its units count toward that day "
                "(bill one line per day where a code's MUE is per day)")


def x12_notes(path: Path) -> list[str]:
    """Notes on what the scrub of an X12 file does not judge as written, in one pass over it: the transaction
    sets that are not 837P (an 837I beside the 837P claims), which it leaves out, and the dates of service
    given as a range of days (DTP*472*RD8), which are judged on their first day."""
    guide, others, spans = "", [], 0
    # Lines of the 837P sets dated by a range: a line's own DTP*472, else its claim's (before its first LX).
    professional, claim_range, line = False, False, None

    def line_ends() -> None:
        nonlocal spans, line
        if line is not None:
            spans += claim_range if line["range"] is None else line["range"]
        line = None

    for segment in read_segments(path):
        if segment.id in ("LX", "CLM", "HL", "SE"):
            line_ends()
        if segment.id == "GS":
            guide = segment.get(8)
        elif segment.id == "ST":
            set_id, set_guide = segment.get(1), segment.get(3) or guide
            professional = set_id == "837" and set_guide.startswith(PROFESSIONAL_GUIDE)
            if not professional:
                others.append(set_kind(set_id, set_guide))
        elif not professional:
            continue
        elif segment.id == "CLM":
            claim_range = False
        elif segment.id == "SV1":
            line = {"range": None}
        elif segment.id == "DTP" and segment.get(1) == "472":
            first, _, last = segment.get(3).partition("-")
            is_range = segment.get(2) == "RD8" and bool(last) and last != first
            if line is not None:
                line["range"] = is_range
            else:
                claim_range = is_range
    line_ends()
    notes = []
    if others:
        notes.append(f"{path}: {len(others)} transaction set{'s' if len(others) != 1 else ''} not 837P left "
                     f"out: {', '.join(others)}")
    if spans:
        notes.append(f"{path}: {spans:,} line{'s' if spans != 1 else ''} dated by a range of days "
                     f"(DTP*472*RD8): {RANGE_JUDGED}")
    return notes


def transaction_set(path: Path) -> str:
    """The id of the file's first transaction set (837, 835, 999 ...), read from its first ST segment."""
    for segment in read_segments(path):
        if segment.id == "ST":
            return segment.get(1)
    raise _invalid(path, "no ST segment")


def inspect_835(path: Path) -> None:
    """Fail fast on a file that is not X12 or holds no 835."""
    for _ in transaction_segments(path, "835", REMITTANCE):
        pass


# ---------------------------------------------------------------------------------------------------- 837P


def _date(segment: Segment) -> str:
    """A DTP date as CCYYMMDD; the first day of a range (RD8)."""
    return segment.get(3).split("-")[0]


def _service_facts(facts: dict, segment: Segment, entity: str) -> str:
    """Into `facts`, a claim's (2300, 2310) or one of its lines' (2400, 2420): the date of service (DTP*472),
    the rendering provider (NM1*82) and the service facility's ZIP (the N4 after NM1*77). Returns the entity
    of the latest NM1, which the N4 after it belongs to."""
    if segment.id == "DTP" and segment.get(1) == "472":
        facts["dos"] = _date(segment)
    elif segment.id == "NM1":
        entity = segment.get(1)
        if entity == "82":
            facts["rendering"] = segment.get(9)
    elif segment.id == "N4" and entity == "77":
        facts["zip"] = segment.get(3)[:5]
    return entity


def _service_line(number: str, segment: Segment, sv1: Segment | None) -> dict:
    """A service line (2400) as it starts: its LX number ("" for an SV1 without its own), the segment it starts
    at, its SV1 if that is where it starts, and its facts still empty (_service_facts)."""
    return {"line_number": number, "segment": segment.number, "sv1": sv1, "dos": "", "rendering": "", "zip": ""}


def claim_rows_837p(path: Path) -> Iterator[dict]:
    """One dict per 837P service line (SV1), with the canonical columns and source_row = SV1's segment number.

    Values stay text: the validate stage judges them, so a line that cannot be scrubbed is quarantined with
    its reasons like a row of a CSV export."""
    return _professional_lines(path, transaction_segments(path, "837", PROFESSIONAL))


def _professional_lines(path: Path, segments: Iterator[Segment]) -> Iterator[dict]:
    hl_levels: dict[str, dict] = {}  # HL01 -> what its loops said, merged over its parents
    hl: dict = {}
    claim: dict | None = None
    line: dict | None = None
    entity = ""  # NM101 of the latest NM1, which the N3/N4 after it belong to
    in_cob = False  # past the claim's first 2320 (other subscriber) loop, whose NM1s are not ours

    def row() -> dict:
        sv1 = line["sv1"]
        procedure = sv1.parts(1) if sv1 is not None else []
        modifiers = (procedure[2:6] + [""] * 4)[:4]
        values = {
            "claim_id": claim["claim_id"],
            "line_number": line["line_number"],
            "patient_id": hl.get("patient_id", ""),
            "date_of_service": line["dos"] or claim["dos"],
            "hcpcs": procedure[1] if len(procedure) > 1 else "",
            # MJ (minutes) is anesthesia time, not units of service: the line is one service.
            "units": ("1" if sv1.get(3) == "MJ" and sv1.get(4) else sv1.get(4)) if sv1 is not None else "",
            "modifier_1": modifiers[0], "modifier_2": modifiers[1],
            "modifier_3": modifiers[2], "modifier_4": modifiers[3],
            "charge": sv1.get(2) if sv1 is not None else "",
            "rendering_npi": line["rendering"] or claim["rendering"] or hl.get("billing_npi", ""),
            "billing_npi": hl.get("billing_npi", ""),
            "place_of_service": (sv1.get(5) if sv1 is not None else "") or claim["pos"],
            "claim_type": "professional",
            "diagnoses": ",".join(claim["diagnoses"]),
            "payer": hl.get("payer", ""),
            # Where the service was rendered: the line's service facility (2420C), else the claim's (2310C),
            # else the billing provider's address (2010AA), which the guide says the claim's location is when
            # no facility loop is sent.
            "service_zip": line["zip"] or claim["zip"] or hl.get("billing_zip", ""),
        }
        record = {name: (values.get(name) or None) for name in CANONICAL}
        record["source_row"] = sv1.number if sv1 is not None else line["segment"]
        record["void_claim"] = claim["frequency"] == VOID_FREQUENCY
        claim["lines"] += 1
        return record

    for segment in segments:
        sid = segment.id
        if sid in ("HL", "CLM", "LX", "SE") and line is not None:
            if claim is not None:
                yield row()
            line = None
        if sid in ("HL", "CLM", "SE") and claim is not None and not claim["lines"]:
            # A claim without a service line (its 2400 loop lost): a row of its own, at its CLM, which the
            # quarantine takes for its missing code, units and line number; never a claim gone without a word.
            line = _service_line("", claim["segment"], None)
            yield row()
            line = None
        if sid == "ST":
            hl_levels, hl, claim = {}, {}, None
        elif sid == "HL":
            hl = {**hl_levels.get(segment.get(2), {}), "level": segment.get(3)}
            hl_levels[segment.get(1)] = hl
            claim, entity = None, ""
        elif sid == "CLM":
            facility = segment.parts(5)
            claim = {"claim_id": segment.get(1), "pos": facility[0], "diagnoses": [], "dos": "",
                     "rendering": "", "zip": "", "frequency": (facility + ["", "", ""])[2], "segment": segment,
                     "lines": 0}
            in_cob, entity = False, ""
        elif sid == "SV1" and line is None:
            if claim is None:
                raise InputFileError(f"{path}: not a valid 837P file: SV1 at segment {segment.number} is "
                                     "outside a claim (CLM)")
            # A service line without its LX still counts: it is quarantined for its missing line number.
            line = _service_line("", segment, segment)
        elif claim is None:
            if sid == "NM1":
                entity = segment.get(1)
                if entity == "85":
                    hl["billing_npi"] = segment.get(9)
                elif entity == "IL":
                    hl["patient_id"] = segment.get(9)
                elif entity == "QC":
                    # A dependent (2000C/2010CA) has no member id of its own: the subscriber's is shared by
                    # every dependent, so the patient is that id with the dependent's name and birth date.
                    # Upper-cased: one system writes KIDD KATE and another Kidd Kate for the same child.
                    name = " ".join(filter(None, [segment.get(3).upper(), segment.get(4).upper()]))
                    hl["patient_id"] = " ".join(filter(None, [segment.get(9) or hl.get("patient_id", ""), name]))
                elif entity == "PR":
                    hl["payer"] = segment.get(3)
            elif sid == "N4" and entity == "85":
                hl["billing_zip"] = segment.get(3)[:5]
            elif sid == "DMG" and entity == "QC":
                hl["patient_id"] = " ".join(filter(None, [hl.get("patient_id", ""), segment.get(2)]))
        elif sid == "LX":
            line = _service_line(segment.get(1), segment, None)
            entity = ""
        elif line is not None:
            if sid == "SV1" and line["sv1"] is not None:
                # A second service line under one LX is a line of its own, without a line number of its own:
                # quarantined for it rather than overwriting the first.
                yield row()
                line = _service_line("", segment, segment)
            elif sid == "SV1":
                line["sv1"] = segment
            else:
                entity = _service_facts(line, segment, entity)
        elif sid == "SBR":
            in_cob = True
        elif in_cob:
            continue
        elif sid == "HI":
            for composite in segment.elements[1:]:
                parts = segment.separators.parts(composite)
                if len(parts) > 1 and parts[0] in DIAGNOSIS_QUALIFIERS and parts[1]:
                    claim["diagnoses"].append(parts[1])
        else:
            entity = _service_facts(claim, segment, entity)


def stage_837p(con, path: Path, table: str, batch_id: str, file_index: int, name: str) -> int:
    """Land one 837P file's service lines in `table` (raw_claim_rows) as text; returns the count."""
    import pandas as pd

    count = 0
    rows = claim_rows_837p(path)
    while chunk := list(islice(rows, STAGE_ROWS)):
        frame = pd.DataFrame.from_records(chunk, columns=["source_row", *CANONICAL, "void_claim"]).astype(
            {c: "object" for c in CANONICAL})
        con.register("incoming_x12_rows", frame)
        try:
            con.execute(f"insert into {table} by name select ? as batch_id, ? as file_index, "
                        "? as source_file, * from incoming_x12_rows", [batch_id, file_index, name])
        finally:
            con.unregister("incoming_x12_rows")
        count += len(chunk)
    return count


# ----------------------------------------------------------------------------------------------------- 835


@dataclass
class Remittance:
    """What one 835 file says: claim payments (CLP), their service lines (SVC) and adjustments (CAS)."""

    claims: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    adjustments: list[dict] = field(default_factory=list)


AMOUNT = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


def _unreadable(path: Path, segment: Segment, position: int, what: str) -> InputFileError:
    value = segment.get(position)
    shown = value if len(value) <= 20 else value[:19] + "…"
    return InputFileError(f"{path}: not a valid 835: segment {segment.number} ({segment.id}{position:02d}) holds "
                          f"{shown!r}, not {what}")


def _amount(path: Path, segment: Segment, position: int) -> str | None:
    """An amount or quantity as written; an element that is none refuses the file (read as nothing, a paid
    amount of `abc` would make a line neither paid nor denied)."""
    value = segment.get(position)
    if value and not AMOUNT.fullmatch(value):
        raise _unreadable(path, segment, position, "an amount")
    return value or None


def _iso_date(path: Path, segment: Segment, position: int) -> str | None:
    """A CCYYMMDD date of an 835 as YYYY-MM-DD; None where the element is empty; a date that is none (20241399)
    refuses the file: the answer's date decides which of a claim's answers counts."""
    value = segment.get(position)
    if not value:
        return None
    if re.fullmatch(r"[0-9]{8}", value):
        try:
            return datetime.strptime(value, "%Y%m%d").date().isoformat()
        except ValueError:
            pass  # eight digits that are no day (20241399)
    raise _unreadable(path, segment, position, "a date (CCYYMMDD)")


def read_835(path: Path) -> Remittance:
    """Every claim payment, service line and adjustment of the 835 transaction sets of a file."""
    remit = Remittance()
    payer, issued, produced = "", None, None
    claim: dict | None = None
    line: dict | None = None
    for segment in transaction_segments(path, "835", REMITTANCE):
        sid = segment.id
        if sid == "ST":
            payer, issued, produced = "", None, None
        elif sid == "BPR":
            issued = _iso_date(path, segment, 16)
        elif sid == "DTM" and segment.get(1) == "405" and claim is None:
            produced = _iso_date(path, segment, 2)
        elif sid == "N1" and segment.get(1) == "PR":
            payer = segment.get(2)
        elif sid == "CLP":
            # When the payer said it: the remittance's production date, else its payment date (BPR16).
            claim = {"claim_seq": len(remit.claims) + 1, "claim_id": segment.get(1), "status": segment.get(2),
                     "charge": _amount(path, segment, 3), "paid": _amount(path, segment, 4), "payer": payer,
                     "issued": produced or issued, "segment": segment.number, "lines": 0}
            remit.claims.append(claim)
            line = None
        elif sid in ("PLB", "SE"):
            claim = line = None
        elif claim is None:
            continue
        elif sid == "SVC":
            billed = segment.parts(1)
            submitted = segment.parts(6) if segment.get(6) else billed
            claim["lines"] += 1
            line = {"line_seq": len(remit.lines) + 1, "claim_seq": claim["claim_seq"],
                    "claim_id": claim["claim_id"], "position": claim["lines"],
                    "hcpcs": submitted[1] if len(submitted) > 1 else "",
                    "paid_hcpcs": billed[1] if len(billed) > 1 else "",
                    "modifiers": ",".join(m for m in submitted[2:6] if m),
                    "charge": _amount(path, segment, 2), "paid": _amount(path, segment, 3),
                    "units": _amount(path, segment, 5), "ref_6r": None, "service_date": None,
                    "payer": payer, "segment": segment.number}
            remit.lines.append(line)
        elif sid == "CAS":
            group = segment.get(1)
            for start in range(2, 20, 3):
                carc = segment.get(start)
                if carc:
                    remit.adjustments.append(
                        {"claim_seq": claim["claim_seq"], "line_seq": line["line_seq"] if line else None,
                         "group_code": group, "carc": carc, "amount": _amount(path, segment, start + 1),
                         "quantity": _amount(path, segment, start + 2), "segment": segment.number})
        elif line is not None and sid == "REF" and segment.get(1) == "6R":
            line["ref_6r"] = segment.get(2)
        elif line is not None and sid == "DTM" and segment.get(1) in ("472", "150"):
            line["service_date"] = line["service_date"] or segment.get(2)
    return remit
