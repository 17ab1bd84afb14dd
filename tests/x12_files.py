"""Write 837P claim files and matching 835 remittances for hand-built claim rows (the rows of write_csv).

Each claim row holds claim_id, line_number, patient_id, date_of_service (YYYY-MM-DD), hcpcs, modifiers
(comma-separated), units, charge, rendering_npi, billing_npi, place_of_service, diagnosis_1, payer and
optionally service_zip. The files follow 005010X222A1 and 005010X221A1 as far as claimscrub reads them.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path


@dataclass(frozen=True)
class Separators:
    element: str = "*"
    component: str = ":"
    segment: str = "~"
    repetition: str = "^"


def npi(base9: str) -> str:
    """A ten-digit NPI with a valid check digit (Luhn over 80840 + the first nine digits)."""
    digits = [int(d) for d in "80840" + base9]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    return base9 + str((10 - total % 10) % 10)


def _isa(sep: Separators, control: int) -> list[str]:
    return ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SUBMITTER".ljust(15), "ZZ", "RECEIVER".ljust(15),
            "240901", "1200", sep.repetition, "00501", f"{control:09d}", "0", "T", sep.component]


def _envelope(sets: list[tuple[str, str, list[list[str]]]], sep: Separators, control: int) -> list[list[str]]:
    """ISA/GS around transaction sets given as (ST01, implementation guide, body segments)."""
    segments = [_isa(sep, control), ["GS", "HC" if sets[0][0] == "837" else "HP", "SENDER", "RECEIVER",
                                     "20240901", "1200", str(control), "X", sets[0][1]]]
    for number, (kind, guide, body) in enumerate(sets, start=1):
        st = f"{control:05d}{number:04d}"
        segments += [["ST", kind, st, guide], *body, ["SE", str(len(body) + 2), st]]
    segments += [["GE", str(len(sets)), str(control)], ["IEA", "1", f"{control:09d}"]]
    return segments


def _render(interchanges: list[list[list[str]]], sep: Separators, line_breaks: bool, bom: bool,
            wrap: int = 0) -> bytes:
    end = sep.segment + ("\r\n" if line_breaks else "")
    text = "".join(sep.element.join(segment) + end for segments in interchanges for segment in segments)
    if wrap:  # wrapped at a fixed width, through segments and the ISA alike, as some systems write X12
        text = "\r\n".join(text[i:i + wrap] for i in range(0, len(text), wrap))
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def _claims(rows: list[dict]) -> dict[str, list[dict]]:
    claims: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        claims[row["claim_id"]].append(row)
    return claims


# The billing provider's address (2010AA): where a claim without a service facility loop (2310C) was rendered.
BILLING_ZIP = "21201"


def _ccyymmdd(value: str) -> str:
    return value.replace("-", "")


def _procedure(row: dict, sep: Separators) -> str:
    modifiers = [m for m in str(row.get("modifiers") or "").replace(" ", ",").split(",") if m]
    return sep.component.join(["HC", row["hcpcs"], *modifiers])


def _professional_body(claims: dict[str, list[dict]], sep: Separators) -> list[list[str]]:
    body = [["BHT", "0019", "00", "0001", "20240901", "1200", "CH"],
            ["NM1", "41", "2", "SUBMITTER", "", "", "", "", "46", "S1"],
            ["NM1", "40", "2", "RECEIVER", "", "", "", "", "46", "R1"]]
    hl = 0
    by_biller: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for claim_id, lines in claims.items():
        first = lines[0]
        by_biller[first["billing_npi"]][(first["patient_id"], first.get("payer") or "")].append(claim_id)
    for billing, subscribers in by_biller.items():
        hl += 1
        biller_hl = hl
        body += [["HL", str(hl), "", "20", "1"], ["NM1", "85", "2", "BILLING GROUP", "", "", "", "", "XX", billing],
                 ["N3", "1 MAIN ST"], ["N4", "BALTIMORE", "MD", BILLING_ZIP], ["REF", "EI", "123456789"]]
        for (patient, payer), claim_ids in subscribers.items():
            hl += 1
            body += [["HL", str(hl), str(biller_hl), "22", "0"], ["SBR", "P", "18", "", "", "", "", "", "", "CI"],
                     ["NM1", "IL", "1", "DOE", "JANE", "", "", "", "MI", patient],
                     ["NM1", "PR", "2", payer, "", "", "", "", "PI", "PAYER1"]]
            for claim_id in claim_ids:
                body += _claim_loop(claim_id, claims[claim_id], sep)
    return body


def _claim_loop(claim_id: str, lines: list[dict], sep: Separators) -> list[list[str]]:
    first = lines[0]
    pos = first.get("place_of_service") or "11"
    total = sum(Decimal(str(line.get("charge") or 0)) for line in lines)
    # CLM05-3, the claim frequency code: 1 an original claim, 8 a void of one sent before.
    frequency = first.get("frequency") or "1"
    segments = [["CLM", claim_id, str(total), "", "", sep.component.join([pos, "B", frequency]), "Y", "A", "Y", "Y"]]
    diagnoses = [line["diagnosis_1"].replace(".", "") for line in lines[:1] if line.get("diagnosis_1")]
    if diagnoses:
        segments.append(["HI", *(sep.component.join(["ABK" if i == 0 else "ABF", dx])
                                 for i, dx in enumerate(diagnoses))])
    if first.get("service_zip"):
        segments += [["NM1", "77", "2", "CLINIC", "", "", "", "", "XX", npi("222333444")],
                     ["N3", "2 CLINIC RD"], ["N4", "TOWN", "MD", first["service_zip"]]]
    for line in lines:
        line_pos = line.get("place_of_service") or "11"
        segments += [["LX", str(line["line_number"])],
                     ["SV1", _procedure(line, sep), str(line.get("charge") or "0"), "UN", str(line["units"]),
                      line_pos if line_pos != pos else "", "", "1"],
                     ["DTP", "472", "D8", _ccyymmdd(line["date_of_service"])],
                     ["REF", "6R", str(line["line_number"])]]
        if line.get("rendering_npi"):
            segments.append(["NM1", "82", "1", "DOC", "RENDERING", "", "", "", "XX", line["rendering_npi"]])
    return segments


def write_837p(path: Path, rows: list[dict], sep: Separators = Separators(), line_breaks: bool = True,
               bom: bool = False, interchanges: int = 1, wrap: int = 0) -> Path:
    """An 837P file of the claims in rows, split over `interchanges` ISA envelopes."""
    claims = _claims(rows)
    ids = list(claims)
    chunk = -(-len(ids) // interchanges)
    envelopes = []
    for n in range(interchanges):
        part = {cid: claims[cid] for cid in ids[n * chunk:(n + 1) * chunk]}
        if part:
            envelopes.append(_envelope([("837", "005010X222A1", _professional_body(part, sep))], sep, n + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_render(envelopes, sep, line_breaks, bom, wrap))
    return path


def write_835(path: Path, rows: list[dict], adjustments: dict[tuple[str, int], list[tuple[str, str]]],
              without_line_ref: set[str] = frozenset(), sep: Separators = Separators(),
              issued: str = "20240915") -> Path:
    """An 835 answering every claim line of rows, one transaction per payer.

    A line with no entry in `adjustments` is paid at 80% of its charge (the rest CO-45). A line with
    entries (group, CARC) is paid nothing, its charge adjusted under the first and any further ones at
    zero. Claims named in without_line_ref carry no REF*6R, so they match by position and code."""
    claims = _claims(rows)
    by_payer: dict[str, list[str]] = defaultdict(list)
    for claim_id, lines in claims.items():
        by_payer[lines[0].get("payer") or ""].append(claim_id)
    sets = []
    for payer, claim_ids in by_payer.items():
        body = [["BPR", "I", "0", "C", "NON", "", "", "", "", "", "", "", "", "", "", "", issued],  # BPR16: the date
                ["TRN", "1", "12345", "1512345678"], ["N1", "PR", payer], ["N1", "PE", "BILLING GROUP", "XX",
                                                                             npi("555000111")], ["LX", "1"]]
        for claim_id in claim_ids:
            services, charged, paid_total = [], Decimal(0), Decimal(0)
            for line in claims[claim_id]:
                charge = Decimal(str(line.get("charge") or 0))
                denial = adjustments.get((claim_id, int(line["line_number"])))
                paid = Decimal(0) if denial else (charge * Decimal("0.8")).quantize(Decimal("0.01"))
                charged, paid_total = charged + charge, paid_total + paid
                services.append(["SVC", _procedure(line, sep), str(charge), str(paid), "", str(line["units"])])
                services.append(["DTM", "472", _ccyymmdd(line["date_of_service"])])
                if denial:
                    for n, (group, carc) in enumerate(denial):
                        services.append(["CAS", group, carc, str(charge if n == 0 else Decimal(0))])
                else:
                    services.append(["CAS", "CO", "45", str(charge - paid)])
                if claim_id not in without_line_ref:
                    services.append(["REF", "6R", str(line["line_number"])])
            status = "1" if paid_total else "4"
            body += [["CLP", claim_id, status, str(charged), str(paid_total), "0", "12", "PCN" + claim_id],
                     ["NM1", "QC", "1", "DOE", "JANE", "", "", "", "MI", claims[claim_id][0]["patient_id"]],
                     *services]
        sets.append(("835", "005010X221A1", body))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_render([_envelope(sets, sep, 1)], sep, True, False))
    return path
