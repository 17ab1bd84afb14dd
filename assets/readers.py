"""Readers for claim exports: CSV (any common encoding and delimiter) and Excel workbooks.

Each reader stages one file's cells in a temporary table, outside the run's transaction; `land_rows` then
turns the staged rows, as text under the canonical column names of INTERFACE.md, into `raw_claim_rows`
with the source file and its 1-based data row. Values are parsed there leniently and once: a value that
does not parse becomes null beside its text, and judging it is the validate stage's job, so that every
problem becomes a quarantine reason.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import functools
import io
import math
import os
import re
import shutil
import tempfile
import tomllib
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb

from .columns import CANONICAL, OPTIONAL, REQUIRED, InputFileError
from .x12 import RANGE_JUDGED, inspect_837p

# Header aliases seen in practice-management exports, keyed by the normalised header.
ALIASES = {
    "claim": "claim_id", "claimid": "claim_id", "claimno": "claim_id", "claimnumber": "claim_id",
    "claimnum": "claim_id", "encounterid": "claim_id", "invoice": "claim_id", "invoicenumber": "claim_id",
    "line": "line_number", "lineno": "line_number", "linenum": "line_number", "linenumber": "line_number",
    "ln": "line_number", "lineitem": "line_number", "seq": "line_number", "sequence": "line_number",
    "patient": "patient_id", "patientid": "patient_id", "memberid": "patient_id", "member": "patient_id",
    "mrn": "patient_id", "accountnumber": "patient_id", "account": "patient_id", "patientaccount": "patient_id",
    "subscriberid": "patient_id", "patientnumber": "patient_id",
    # Account numbers, as practice-management systems head them ("Patient Acct", "Acct #", "Account No").
    "patientacct": "patient_id", "patientacctno": "patient_id", "patientacctnumber": "patient_id",
    "patientaccountno": "patient_id", "patientaccountnumber": "patient_id", "acct": "patient_id",
    "acctno": "patient_id", "acctnum": "patient_id", "acctnumber": "patient_id", "accountno": "patient_id",
    "accountnum": "patient_id", "medicalrecordnumber": "patient_id", "medicalrecordno": "patient_id",
    "dos": "date_of_service", "servicedate": "date_of_service", "dateofservice": "date_of_service",
    "dosfrom": "date_of_service", "fromdate": "date_of_service", "svcdate": "date_of_service",
    "datefrom": "date_of_service",
    "cpt": "hcpcs", "cptcode": "hcpcs", "procedure": "hcpcs", "procedurecode": "hcpcs", "proccode": "hcpcs",
    "hcpcscode": "hcpcs", "cpthcpcs": "hcpcs", "code": "hcpcs", "hcpcs": "hcpcs", "cptcd": "hcpcs",
    "unit": "units", "units": "units", "qty": "units", "quantity": "units", "unitsofservice": "units",
    "days": "units", "daysunits": "units", "serviceunits": "units",
    "mod1": "modifier_1", "mod2": "modifier_2", "mod3": "modifier_3", "mod4": "modifier_4",
    "modifier1": "modifier_1", "modifier2": "modifier_2", "modifier3": "modifier_3", "modifier4": "modifier_4",
    "modifier": "modifiers", "modifiers": "modifiers", "mods": "modifiers", "mod": "modifiers",
    "cptmod": "modifiers", "cptmodifier": "modifiers", "cptmodifiers": "modifiers", "hcpcsmod": "modifiers",
    "hcpcsmodifier": "modifiers", "hcpcsmodifiers": "modifiers", "proceduremodifier": "modifiers",
    "daysorunits": "units", "unitsordays": "units", "unitsdays": "units",
    "charge": "charge", "charges": "charge", "amount": "charge", "billedamount": "charge",
    "chargeamount": "charge", "billed": "charge", "linecharge": "charge", "totalcharge": "charge",
    "renderingnpi": "rendering_npi", "renderingprovidernpi": "rendering_npi", "rendering": "rendering_npi",
    "providernpi": "rendering_npi", "npi": "rendering_npi", "performingnpi": "rendering_npi",
    "billingnpi": "billing_npi", "billingprovidernpi": "billing_npi", "groupnpi": "billing_npi",
    "billing": "billing_npi",
    "pos": "place_of_service", "placeofservice": "place_of_service", "poscode": "place_of_service",
    "claimtype": "claim_type", "billtype": "claim_type", "type": "claim_type",
    "dx1": "diagnosis_1", "dx2": "diagnosis_2", "dx3": "diagnosis_3", "dx4": "diagnosis_4",
    "diag1": "diagnosis_1", "diag2": "diagnosis_2", "diag3": "diagnosis_3", "diag4": "diagnosis_4",
    "diagnosis1": "diagnosis_1", "diagnosis2": "diagnosis_2", "diagnosis3": "diagnosis_3",
    "diagnosis4": "diagnosis_4", "icd1": "diagnosis_1", "icd2": "diagnosis_2", "icd3": "diagnosis_3",
    "icd4": "diagnosis_4", "diagnosiscode1": "diagnosis_1", "diagnosiscode2": "diagnosis_2",
    "diagnosiscode3": "diagnosis_3", "diagnosiscode4": "diagnosis_4",
    "dx": "diagnoses", "diagnoses": "diagnoses", "diagnosis": "diagnoses", "diagnosiscodes": "diagnoses",
    "icd10": "diagnoses", "dxcodes": "diagnoses", "diagnosiscode": "diagnoses", "dxcode": "diagnoses",
    "icd": "diagnoses", "icdcode": "diagnoses", "icdcodes": "diagnoses", "icd10code": "diagnoses",
    "icd10codes": "diagnoses", "icd10cm": "diagnoses",
    # Numbered diagnosis columns as exports head them ("ICD10 1", "ICD-10 Code 2", "Dx Code 3"), and the
    # primary and secondary diagnosis; never a diagnosis pointer ("Dx Pointer": 1, 2 ... point at them).
    **{f"{stem}{n}": f"diagnosis_{n}" for n in range(1, 5)
       for stem in ("icd10", "icd10code", "icd10cm", "icdcode", "dxcode", "diagcode")},
    "primarydx": "diagnosis_1", "primarydiagnosis": "diagnosis_1", "principaldiagnosis": "diagnosis_1",
    "secondarydx": "diagnosis_2", "secondarydiagnosis": "diagnosis_2",
    "payer": "payer", "payor": "payer", "payername": "payer", "payorname": "payer", "insurance": "payer",
    "payerid": "payer", "plan": "payer", "carrier": "payer",
    "locality": "locality", "pricinglocality": "locality", "maclocality": "locality",
    "servicezip": "service_zip", "zip": "service_zip", "zipcode": "service_zip", "servicezipcode": "service_zip",
    "facilityzip": "service_zip", "servicelocationzip": "service_zip", "servicelocationzipcode": "service_zip",
    "servicefacilityzip": "service_zip", "servicefacilityzipcode": "service_zip", "locationzip": "service_zip",
    "locationzipcode": "service_zip", "placeofservicezip": "service_zip", "poszip": "service_zip",
    # More headers of practice-management and clearinghouse exports.
    "encounter": "claim_id", "encounterno": "claim_id", "encounternumber": "claim_id", "visitid": "claim_id",
    "visitnumber": "claim_id", "visitno": "claim_id", "ticketnumber": "claim_id", "ticketno": "claim_id",
    "serviceline": "line_number", "svcline": "line_number", "linenbr": "line_number", "lineseq": "line_number",
    "ptid": "patient_id", "insuredid": "patient_id", "mbi": "patient_id", "beneficiaryid": "patient_id",
    "dateofsvc": "date_of_service", "fromdos": "date_of_service", "servicefromdate": "date_of_service",
    "svcfromdate": "date_of_service", "dosstart": "date_of_service",
    "hcpcscpt": "hcpcs", "servicecode": "hcpcs", "cpthcpcscode": "hcpcs", "hcpcscptcode": "hcpcs",
    "unitsbilled": "units", "billedunits": "units", "svcunits": "units", "unitcount": "units",
    "servicingnpi": "rendering_npi", "servicingprovidernpi": "rendering_npi",
    "performingprovidernpi": "rendering_npi", "renderingprovider": "rendering_npi",
    "billingprovider": "billing_npi", "paytonpi": "billing_npi", "organizationnpi": "billing_npi",
    "placeofsvc": "place_of_service", "poscd": "place_of_service",
    "visit": "claim_id", "servicelinenumber": "line_number", "servicelineno": "line_number",
    "chargeline": "line_number", "chargelinenumber": "line_number", "chargelineno": "line_number",
    "membernumber": "patient_id", "memberno": "patient_id", "membernum": "patient_id",
    "subscribernumber": "patient_id", "svcfrom": "date_of_service", "servicefrom": "date_of_service",
    "proc": "hcpcs", "procedurecd": "hcpcs",
    "m1": "modifier_1", "m2": "modifier_2", "m3": "modifier_3", "m4": "modifier_4",
    "insurancename": "payer", "planname": "payer", "insurancecompany": "payer", "primaryinsurance": "payer",
    "primarypayer": "payer",
    # Numbered modifier columns under the code's name ("CPT Modifier 1", "Proc Mod 2", "HCPCS Mod 3").
    **{f"{stem}{n}": f"modifier_{n}" for n in range(1, 5)
       for stem in ("cptmod", "cptmodifier", "procmod", "proceduremod", "proceduremodifier", "hcpcsmod",
                    "hcpcsmodifier", "modcode", "modifiercode")},
    "proceduremodifiers": "modifiers", "procmods": "modifiers", "procmodifiers": "modifiers",
    "placeofservicecode": "place_of_service", "placeofservicepos": "place_of_service",
    "poscodes": "place_of_service", "servicelocation": "place_of_service",
    # Abbreviations of report headers ("Pat Acct", "Clm No", "Rend NPI", "Ins Name").
    "patacct": "patient_id", "patacctno": "patient_id", "patacctnum": "patient_id", "ptacct": "patient_id",
    "ptacctno": "patient_id", "mbrid": "patient_id", "mbrno": "patient_id", "chart": "patient_id",
    "chartno": "patient_id", "chartnumber": "patient_id", "patid": "patient_id", "patientno": "patient_id",
    "clm": "claim_id", "clmno": "claim_id", "clmnum": "claim_id", "clmnbr": "claim_id", "clmid": "claim_id",
    "claimnbr": "claim_id", "lnno": "line_number", "lnnbr": "line_number",
    "rendnpi": "rendering_npi", "renderingprovnpi": "rendering_npi", "rendprovnpi": "rendering_npi",
    "rendprovidernpi": "rendering_npi", "renderingphysiciannpi": "rendering_npi", "rendernpi": "rendering_npi",
    "billnpi": "billing_npi", "billprovnpi": "billing_npi", "billingprovnpi": "billing_npi",
    "billprovidernpi": "billing_npi",
    "insname": "payer", "ins": "payer", "insurer": "payer", "primaryins": "payer", "primaryinsname": "payer",
    "payorid": "payer", "insco": "payer", "inscompany": "payer",
    # A procedure as clinicians abbreviate it ("Px"), and amounts as billing reports head them ("Billed Amt").
    "px": "hcpcs", "pxcode": "hcpcs",
    "enc": "claim_id", "encno": "claim_id", "encnum": "claim_id", "encnbr": "claim_id", "encid": "claim_id",
    "svcdt": "date_of_service", "servicedt": "date_of_service", "dtofsvc": "date_of_service",
    "dtofservice": "date_of_service",
    "billedamt": "charge", "chargeamt": "charge", "chgamt": "charge", "chargeamnt": "charge",
    "billedcharge": "charge", "billedcharges": "charge", "totalcharges": "charge", "amountbilled": "charge",
    "amtbilled": "charge", "linechargeamt": "charge", "linechargeamount": "charge",
}
# Headers that may name another field than the one they suggest, taken only when no other header of the file
# names that field: a subscriber's id is shared by the dependents on their policy (the patient's own account
# or member id comes first); "Rendering Provider" or "Billing Provider" often holds a name (an NPI column comes
# first); "Procedure" or "Code" a description, "Type" anything; a payer's id gives way to its name; "Service
# Location" is often the facility's name (a POS column comes first), "Days" the days in receivables (a
# quantity or units column comes first).
WEAK_ALIASES = {"subscriberid", "insuredid", "subscribernumber", "rendering", "renderingprovider", "billing",
                "billingprovider", "procedure", "proc", "code", "type", "payerid", "payorid", "servicelocation",
                "days"}
# Each column's own name, as a header normalises ("claim_id", "Claim ID"): it wins over an alias (map_headers).
CANONICAL_KEYS = {name.replace("_", ""): name for name in CANONICAL}
ALIASES.update(CANONICAL_KEYS)


# Legacy binary Office files (.xls) start with the OLE2 compound-document signature.
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The names openpyxl opens a workbook by.
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xltx", ".xltm")




@dataclass
class SourceFile:
    path: Path
    name: str
    sha256: str
    rows_read: int


def normalise_header(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name or "").lower())


def load_mapping(path: str | None) -> dict[str, str]:
    """A site's own header names: a TOML file with a [columns] table, "Their Header" = "hcpcs"."""
    if not path:
        return {}
    if Path(path).exists() and not Path(path).is_file():
        # A pipe would hold the command until something writes to it; a folder cannot be read.
        raise InputFileError(f"{path}: cannot read the header mapping file (not a regular file)")
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read the header mapping file ({_one_line(str(exc))})") from None
    columns = data.get("columns", data)
    if not isinstance(columns, dict):
        raise InputFileError(f'{path}: [columns] is not a table of lines such as "Their header" = "hcpcs"')
    mapping = {}
    for source, target in columns.items():
        if not isinstance(target, str) or target not in CANONICAL:
            # A column's other name ("claim_number", "CPT") says which it is; else the nearest spelling.
            alias = ALIASES.get(normalise_header(target)) if isinstance(target, str) else None
            close = [alias] if alias else difflib.get_close_matches(str(target), CANONICAL, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputFileError(f"{path}: '{_one_line(str(target))}' is not a claimscrub column{hint} "
                                 f"(mapping of '{_one_line(source)}')")
        mapping[normalise_header(source)] = target
    return mapping


# Columns an export may repeat under one header ("Modifier", "Modifier", ...; "Dx", "Dx", ...): a repeat takes
# the next free column of its kind, where it would otherwise go unread (a 59 in the second "Modifier" lost).
REPEATABLE = {
    **dict.fromkeys(["modifiers", "modifier_1", "modifier_2", "modifier_3", "modifier_4"],
                    ("modifier_1", "modifier_2", "modifier_3", "modifier_4")),
    **dict.fromkeys(["diagnoses", "diagnosis_1", "diagnosis_2", "diagnosis_3", "diagnosis_4"],
                    ("diagnosis_1", "diagnosis_2", "diagnosis_3", "diagnosis_4")),
}


def map_headers(headers: list[str], mapping: dict[str, str], path: Path) -> dict[int, str]:
    """Column position -> canonical name. A header the site's mapping names, or one that is the column's own
    name ("claim_id", "Claim ID"), takes it first, wherever it stands; then the aliases, the first column that
    claims a name keeping it ("Code" before "CPT Code" does not take the code from it when the file also has
    "HCPCS"), the weak ones (WEAK_ALIASES) last. A repeat of a modifier or diagnosis column takes the next free
    one of its kind (REPEATABLE)."""
    taken: dict[int, str] = {}
    used: set[str] = set()
    unknown: list[str] = []
    keys = [normalise_header(header) for header in headers]
    # The site's mapping first: a header it names wins over one that is the column's own name elsewhere.
    for names in (mapping, CANONICAL_KEYS):
        for position, key in enumerate(keys):
            target = names.get(key)
            if target and position not in taken and target not in used:
                taken[position] = target
                used.add(target)
    for weak in (False, True):
        for position, (header, key) in enumerate(zip(headers, keys)):
            if position in taken or (key in WEAK_ALIASES and not mapping.get(key)) != weak:
                continue
            target = mapping.get(key) or ALIASES.get(key)
            if target in used and target in REPEATABLE:
                target = next((t for t in REPEATABLE[target] if t not in used), target)
            if target and target not in used:
                taken[position] = target
                used.add(target)
            elif not target and key:
                unknown.append(header)
    missing = [name for name in REQUIRED if name not in used]
    if missing and not used and path.suffix.lower() in X12_SUFFIXES:
        # Named as X12, read as CSV since it does not start with an ISA, and no header of a claim export either.
        raise InputFileError(f"{path}: named {path.suffix}, but not an X12 file (it does not start with an ISA "
                             "segment) nor a claim export with a header row")
    if missing and not used and looks_like_values(headers):
        # A file without its header row: its first row is a claim line, and quoting it would put a patient's
        # id on the screen and in the night's log.
        raise InputFileError(f"{path}: the first row holds values, not column names: the file needs a header "
                             f"row naming its columns ({', '.join(REQUIRED)} ...; see docs/INTERFACE.md)")
    if missing:
        message = f"{path}: required column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}"
        if unknown:
            shown = ", ".join(_quoted_header(h) for h in unknown[:UNKNOWN_SHOWN])
            more = f" and {len(unknown) - UNKNOWN_SHOWN} more" if len(unknown) > UNKNOWN_SHOWN else ""
            message += f"; headers not recognised: {shown}{more}"
        raise InputFileError(message, mapping_advice(missing, unknown))
    return dict(sorted(taken.items()))


# A cell that is a value rather than a column's name: a number, a date, an amount, or a code or id that mixes
# letters and digits without a space ("76120", "2024-07-08", "PT00123"); headers such as "Dx 1" have a space.
VALUE_CELL = re.compile(r"[\d.,/$:-]+|(?=\S*\d)(?=\S*[A-Za-z])\S{5,}")


def looks_like_values(cells: list[str]) -> bool:
    """Whether a first row is a row of data: at least two of its cells are values (VALUE_CELL)."""
    return sum(1 for cell in cells if VALUE_CELL.fullmatch(cell.strip())) >= 2


# Headers named in a missing-columns message, at most; a wide export has dozens the scrub has no use for.
UNKNOWN_SHOWN = 12
# How alike a header must be to a column's name or aliases to be offered as that column.
GUESS_THRESHOLD = 0.6


def _one_line(text: str, limit: int = 60) -> str:
    """Text for a one-line message: long text cut, control characters and line breaks escaped."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in cut)


def _quoted_header(header: str) -> str:
    return '"' + _one_line(header, 40) + '"'


def _likeness(header: str, column: str) -> float:
    """How alike a header is to a column: its best match among the column's name and aliases, 1 for the
    same letters, nearly 1 when one holds the other ("Patient Acct No" holds "patient")."""
    key = normalise_header(header)
    best = 0.0
    for alias in [normalise_header(column), *(a for a, target in ALIASES.items() if target == column)]:
        if alias == key:
            return 1.0
        shorter, longer = sorted((alias, key), key=len)
        if len(shorter) >= 3 and shorter in longer:
            best = max(best, 0.75 + 0.25 * len(shorter) / len(longer))
        else:
            best = max(best, difflib.SequenceMatcher(None, alias, key).ratio())
    return best


ADVICE_HEADER_LENGTH = 60


def mapping_advice(missing: list[str], unknown: list[str]) -> str:
    """A mapping ready to paste for the missing columns: each with the unrecognised header most like it, a
    commented line where none is; "" when no header is like any of them."""
    # A cell longer than a header can be (a whole line of a file that is not a table) is never offered.
    pairs = sorted(((_likeness(h, column), i, h, column)
                    for column in missing for i, h in enumerate(unknown) if len(h) <= ADVICE_HEADER_LENGTH),
                   key=lambda p: (-p[0], p[1]))
    guesses: dict[str, str] = {}
    for score, _, header, column in pairs:
        if score >= GUESS_THRESHOLD and column not in guesses and header not in guesses.values():
            guesses[column] = header
    if not guesses:
        return ""
    lines = ["# Paste into a mapping file and give it with --mapping FILE (or CLAIMSCRUB_MAPPING):",
             "[columns]"]
    for column in missing:
        if column in guesses:
            lines.append(f'{_toml_string(guesses[column])} = "{column}"')
        else:
            lines.append(f'# "your header for {column}" = "{column}"')
    return "\n".join(lines)


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = []
    for ch in text:
        if ch in '"\\':
            escaped.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\u{ord(ch):04x}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_kind(path: Path) -> str:
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, not a claim export")
    if not path.is_file():
        # A pipe (`<(...)`) or a device is read once and gone: the command reads each file more than once.
        raise InputFileError(f"{path}: is a pipe or device, not a file: save the export to a file and give its path")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head.strip():
        raise InputFileError(f"{path}: file is empty")
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(OLE2_MAGIC):
        raise InputFileError(f"{path}: an old-style .xls workbook: save it as .xlsx or CSV")
    if head.startswith(b"%PDF-"):
        raise InputFileError(f"{path}: a PDF document, not a claim export: export the claims as CSV or .xlsx")
    markup = _markup_kind(head)
    if markup:
        suffix = path.suffix.lower()
        what = (f" named {suffix}, not an Excel workbook" if suffix in (".xls", ".xlsx")
                else ", not a claim export")
        raise InputFileError(f"{path}: {markup}{what}: open it in Excel and save it as .xlsx or CSV")
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if stripped.startswith(b"ISA"):
        return "x12"
    return "csv"


X12_SUFFIXES = (".837", ".835", ".x12", ".edi")


def _markup_kind(head: bytes) -> str:
    """What a file that starts with markup really is ("an HTML page"), or "" for one that does not. Web
    portals save reports as HTML or XML under an .xls name; Excel opens those, claimscrub does not."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            head = head[len(bom):].decode(encoding, errors="ignore").encode("utf-8", errors="ignore")
            break
    text = head.lstrip().lower()
    if not text.startswith(b"<"):
        return ""
    if b"urn:schemas-microsoft-com:office:spreadsheet" in text:
        return "an Excel 2003 XML spreadsheet"
    if re.match(rb"<(!doctype html|html|head|body|meta|table|style|title)[\s>/]", text) or b"<html" in text:
        return "an HTML page"
    # A bare tag only when the first line has no delimiter: a CSV header may open with "<Claim>,".
    first_line = text.split(b"\n", 1)[0]
    if re.match(rb"<(\?xml|!--)", text) or (re.match(rb"<[a-z_:][-a-z0-9_:.]*[\s>/]", text)
                                           and not re.search(rb"[,\t;|]", first_line)):
        return "an XML document"
    return ""


def misnamed(path: Path, kind: str) -> str:
    """A note when a readable file's name says another kind than its content ("" when they agree): an
    .xlsx workbook saved as .xls or .csv, a text export named .xls. The file is read as what it is."""
    suffix = path.suffix.lower()
    if kind == "xlsx" and suffix in (".csv", ".txt", ".tsv"):
        return f"{path}: an .xlsx workbook named {suffix}; read as .xlsx"
    if suffix not in (".xls", ".xlsx") or (kind == "xlsx" and suffix == ".xlsx"):
        return ""
    really, read_as = {"xlsx": ("an .xlsx workbook", ".xlsx"), "csv": ("delimited text", "CSV"),
                       "x12": ("an X12 file", "X12")}[kind]
    return f"{path}: {really} named {suffix}; read as {read_as}"


# Bytes no text export holds but by accident: the C0 controls but tab, line feed, form feed and carriage return.
CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


def detect_encoding(path: Path) -> str:
    """The file's text encoding: a BOM's, else UTF-8 if every byte decodes, else Windows-1252 (the superset of
    latin-1 that US Windows exports are written in: its curly quotes and dashes are bytes 0x80 to 0x9F, which
    latin-1 holds only as control characters)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16"
    if head.startswith(codecs.BOM_UTF16_BE):
        # DuckDB reads UTF-16 as little-endian only; a big-endian file would come back empty, not wrong-looking.
        raise InputFileError(f"{path}: UTF-16 big-endian text is not supported: save it as UTF-8 CSV")
    # Binary files (and UTF-16 without its mark) hold NUL bytes among many control bytes; a text export may carry
    # a stray NUL in a cell (a value pasted from another system), which is no reason to refuse every row of it.
    if b"\x00" in head and (len(head) - len(head.translate(None, CONTROL_BYTES))) * 100 > len(head):
        raise InputFileError(f"{path}: binary content: not a CSV, Excel or X12 claim export")
    stat = path.stat()
    return "utf-8" if _text_facts(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[0] else WINDOWS_1252


WINDOWS_1252 = "cp1252"
# The five bytes Windows-1252 leaves undefined are read as latin-1 reads them, rather than refusing the file.
codecs.register_error("claimscrub-latin-1",
                      lambda error: (error.object[error.start:error.end].decode("latin-1"), error.end))


@functools.lru_cache(maxsize=64)
def _text_facts(name: str, size: int, mtime_ns: int) -> tuple[bool, int, bool, bool]:
    """Whether the whole file decodes as UTF-8, how many double quotes it holds (an odd number: a quote opened
    and never closed), whether it ends lines both with CR LF and with a CR alone, and whether an empty line stands
    before more text (one at the end is none); read once per version of the file (the command inspects a file
    before the run, then the run reads it)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, quotes, returns, pairs, previous = True, 0, 0, 0, b""
    blank, pending = False, False
    with open(name, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            quotes += block.count(b'"')
            block_returns = block.count(b"\r")
            returns += block_returns
            # A block without CR holds no CR LF: most exports end lines with LF alone, and need no search for it.
            pairs += (block_returns and block.count(b"\r\n")) + (previous.endswith(b"\r") and block.startswith(b"\n"))
            if not blank:
                blank = pending and bool(block.strip(b"\r\n"))
                joined = previous[-2:] + block
                # The first empty line of the block: text after it is a row after an empty line.
                if block_returns or b"\r" in previous[-2:]:
                    end = min((joined.find(pattern) + len(pattern) for pattern in (b"\n\n", b"\n\r\n", b"\r\r")
                               if pattern in joined), default=-1)
                else:
                    end = _after_first_lf_pair(joined)
                if end >= 0:
                    blank = blank or bool(joined[end:].strip(b"\r\n"))
                    pending = True
            previous = block
            # ASCII is UTF-8: a block of it needs no decoding unless a character began in the last one.
            if utf8 and not (block.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return utf8, quotes, 0 < pairs < returns, blank


def _after_first_lf_pair(text: bytes) -> int:
    """Where the first two adjacent line feeds of `text` end, or -1: found among the line feeds' positions, which
    takes a fraction of the time a two-byte search of the text does."""
    import numpy as np

    feeds = np.flatnonzero(np.frombuffer(text, np.uint8) == 10)
    adjacent = np.flatnonzero(feeds[1:] - feeds[:-1] == 1)
    return int(feeds[adjacent[0]]) + 2 if len(adjacent) else -1


def _blank_lines(path: Path) -> bool:
    stat = path.stat()
    return _text_facts(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[3]


def _row_gaps(path: Path, encoding: str, delimiter: str, skip: int) -> list[int]:
    """For a file with empty lines among its rows (which DuckDB's reader passes over): per empty line, in order,
    how many rows come before it. A row's place in the file (its source row, as the file opens in Excel) is its
    number among the rows read plus the empty lines whose count is below that number."""
    gaps, rows = [], 0
    # DuckDB reads a cell of any length up to its line limit; Python's csv stops at 128 KB unless told.
    csv.field_size_limit(1 << 30)
    with open(path, encoding=encoding, errors="claimscrub-latin-1", newline="") as fh:
        for _ in range(skip):
            fh.readline()
        for record in csv.reader(fh, delimiter=delimiter):
            if record:
                rows += 1
            else:
                gaps.append(rows)
    return gaps


def _quotes(path: Path) -> int:
    stat = path.stat()
    return _text_facts(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[1]


def _mixed_line_ends(path: Path) -> bool:
    stat = path.stat()
    return _text_facts(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[2]


LONE_CR = re.compile(rb"\r(?!\n)")


UTF8_COPY = ".claimscrub-utf8-"
# A UTF-8 copy's name: the process id that made it (none in names from before ids were put in them), then
# mkstemp's random characters.
UTF8_COPY_NAME = re.compile(rf"{re.escape(UTF8_COPY)}(?:(\d+)-)?[A-Za-z0-9_]+\.csv")


def remove_abandoned(folder: Path, pattern: re.Pattern) -> None:
    """What runs killed part-way left in `folder` (a UTF-8 copy of an export, a staging folder of reports):
    the entries named by `pattern`, its first group the id of the process that made them, that process gone.
    They hold patient data. Nothing else is touched."""
    for entry in folder.iterdir() if folder.is_dir() else []:
        named = pattern.fullmatch(entry.name)
        if named is None:
            continue
        try:
            if named[1] is not None:
                os.kill(int(named[1]), 0)
                continue  # its process is running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # a live process of another user
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


@contextmanager
def utf8_copy(con, path: Path, encoding: str) -> Iterator[Path]:
    """The file itself when DuckDB reads its encoding (UTF-8, UTF-16), else a private UTF-8 copy of it, removed
    when the reading is done: DuckDB reads no Windows-1252 of its own. The copy holds the export's patient data,
    so it is made beside the database (where the site keeps that data already), owner-only."""
    # A CR alone in a file of CR LF lines: DuckDB's reader takes it for half a CR LF and drops the character
    # after it, the first of the next row's claim id. The copy ends that line with CR LF too.
    mixed = encoding not in ("utf-16", "utf-16-le", "utf-16-be") and _mixed_line_ends(path)
    if encoding != WINDOWS_1252 and not mixed:
        yield path
        return
    home = con.execute("select path from duckdb_databases() where database_name = current_database()").fetchall()
    folder = Path(home[0][0]).parent if home and home[0][0] else Path(tempfile.gettempdir())
    remove_abandoned(folder, UTF8_COPY_NAME)
    handle, name = tempfile.mkstemp(prefix=f"{UTF8_COPY}{os.getpid()}-", suffix=".csv", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out, open(path, "rb") as source:
            held = b""
            for block in iter(lambda: source.read(1 << 20), b""):
                block, held = held + block, b""
                if mixed:
                    if block.endswith(b"\r"):
                        block, held = block[:-1], b"\r"
                    block = LONE_CR.sub(b"\r\n", block)
                out.write(block.decode(WINDOWS_1252, "claimscrub-latin-1").encode("utf-8")
                          if encoding == WINDOWS_1252 else block)
            out.write(held.replace(b"\r", b"\r\n"))
        yield Path(name)
    finally:
        os.unlink(name)


def _sniff_delimiter(first: str) -> str:
    counts = {d: first.count(d) for d in [",", "\t", ";", "|"]}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


# Rows looked at for the header row: a practice-management report often prints a title, the date range or
# Excel's "sep=;" line above it.
HEADER_SEARCH_ROWS = 11  # the header and up to ten rows of title above it
HEADER_LINES = 4  # the lines a header row may span, its cells holding line breaks
HEADER_FAR_ROWS = 100  # the rows below those looked at for a header row too far down, to name it
EXCEL_SEPARATOR_LINE = re.compile(r"sep=(.)", re.IGNORECASE)


def required_named(cells: list[str], mapping: dict[str, str]) -> int:
    """How many of the required columns a row names (by the mapping or an alias)."""
    named = {mapping.get(key) or ALIASES.get(key) for key in map(normalise_header, cells)}
    return sum(name in named for name in REQUIRED)


def names_every_required_column(cells: list[str], mapping: dict[str, str]) -> bool:
    """Whether a row is a header row: it names every required column."""
    return required_named(cells, mapping) == len(REQUIRED)


def likeliest_header(rows: list[list[str]], mapping: dict[str, str]) -> int:
    """Of rows none of which names every required column, the index of the one naming most of them: the header
    whose missing columns the message names, not a title row above it. Of equals (every row, where none names
    any), the first of the widest: a table's header is as wide as its rows, and a title above it ("Patient:
    SMITH, ANN  Acct 1234") narrower; the message quotes the row it takes."""
    keys = [(required_named(cells, mapping), sum(1 for cell in cells if cell.strip())) for cells in rows]
    return keys.index(max(keys)) if keys else 0


def _refuse_a_header_too_far_down(path: Path, lines: list[str], below: list[int], delimiter: str | None,
                                  mapping: dict[str, str]) -> None:
    """A header row below the rows searched (more than ten rows of title above it) is named, rather than the
    title row most like a header being taken for it and its 'missing' columns listed."""
    for line in below[:HEADER_FAR_ROWS]:
        cells = next(csv.reader([lines[line]], delimiter=delimiter or _sniff_delimiter(lines[line])), [])
        if names_every_required_column(cells, mapping):
            raise InputFileError(f"{path}: the header row is line {line + 1}, below more than "
                                 f"{HEADER_SEARCH_ROWS - 1} rows of title: claimscrub looks for it in the first "
                                 f"{HEADER_SEARCH_ROWS} rows; remove the rows above it")


def read_csv_header(path: Path, encoding: str, mapping: dict[str, str] | None = None
                    ) -> tuple[list[str], str, int]:
    """The header cells, the delimiter, and how many physical lines come before the first data row. The header
    row is the first of the first HEADER_SEARCH_ROWS lines that names every required column (a title above it
    is skipped), else the one of them naming most (likeliest_header), whose headers the missing-columns
    message then names."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        sample = fh.read(1 << 16)
    if not sample.strip():
        raise InputFileError(f"{path}: file is empty")
    lines = sample.splitlines(keepends=True)
    # Blank lines above the header are skipped here and counted, so that DuckDB skips them too.
    filled = [i for i, line in enumerate(lines) if line.strip()]
    delimiter = None
    separator = EXCEL_SEPARATOR_LINE.fullmatch(lines[filled[0]].strip())
    if separator:
        delimiter, filled = separator.group(1), filled[1:]
        if not filled:
            raise InputFileError(f"{path}: no header row")
    searched = filled[:HEADER_SEARCH_ROWS]
    # Each row as it would read from its first line on: a header cell may hold a line break ("Claim<br>ID" in a
    # quoted cell), so a header row can span lines.
    rows = [next(csv.reader(io.StringIO("".join(lines[i:i + HEADER_LINES]), newline=""),
                            delimiter=delimiter or _sniff_delimiter(lines[i])), []) for i in searched]
    if not any(names_every_required_column(cells, mapping or {}) for cells in rows):
        _refuse_a_header_too_far_down(path, lines, filled[HEADER_SEARCH_ROWS:], delimiter, mapping or {})
    start = searched[likeliest_header(rows, mapping or {})]
    delimiter = delimiter or _sniff_delimiter(lines[start])
    # Lines end at CR as at LF (newline=""): an export with the old Mac line ends has its header row read too.
    headers = next(csv.reader(io.StringIO("".join(lines[start:]), newline=""), delimiter=delimiter), [])
    if not any(h.strip() for h in headers):
        raise InputFileError(f"{path}: no header row")
    # DuckDB skips rows as it reads them, a header row whose cell holds a line break as one.
    return headers, delimiter, start + 1


def rows_above_header(path: Path, mapping: dict[str, str]) -> str:
    """A note when the header row is not a file's first row (a title above it, skipped); "" when it is."""
    kind = detect_kind(path)
    if kind == "csv":
        encoding = detect_encoding(path)
        _, _, skip = read_csv_header(path, encoding, mapping)
        with open(path, encoding=encoding, errors="replace", newline="") as fh:
            above = [line for _, line in zip(range(skip - 1), fh) if line.strip()]
        above = [line for line in above if not EXCEL_SEPARATOR_LINE.fullmatch(line.strip())]
    elif kind == "xlsx":
        workbook, _, _, above, sheet = _first_sheet_header(path, mapping)
        try:
            others = _other_claim_sheets(workbook, sheet[0] if sheet else 1, mapping)
            title = workbook.worksheets[0].title
        finally:
            workbook.close()
        unread = (f"; sheet{'s' if len(others) > 1 else ''} {', '.join(repr(t) for t in others)} also "
                  f"{'have' if len(others) > 1 else 'has'} a header row naming the required columns and "
                  f"{'are' if len(others) > 1 else 'is'} not read: save each sheet of claims as a file of its own"
                  if others else "")
        skipped = (f"; {len(above)} row{'s' if len(above) > 1 else ''} of title above its header skipped"
                   if above else "")
        if sheet:
            return (f"{path}: the claims are read from sheet {sheet[1]!r} (sheet {sheet[0]}: no sheet before it "
                    f"has a header row naming the required columns){skipped}{unread}")
        if unread:
            return f"{path}: the claims are read from sheet {title!r}{skipped}{unread}"
    else:
        return ""
    if not above:
        return ""
    return f"{path}: the header row comes after {len(above)} row{'s' if len(above) > 1 else ''} of title; skipped"


# Lenient parsing, once per row, from the staged text to the columns of `raw_claim_rows` after its source
# columns. The text of line_number, date_of_service and units stays beside its parsed value: the quarantine
# quotes it. They read a query of source_row and the canonical columns, as trimmed text or null, with the
# helper columns of `parsed_rows_sql`.
#
# Dates of service in the forms of INTERFACE.md, each recognised by its shape before it is parsed, so that
# no form is read as another (DuckDB's %Y reads '25' as the year 25): YYYY-MM-DD, M/D/YYYY, M/D/YY as 20YY,
# YYYY/M/D, M-D-YYYY (month first, as on US claims), D-Mon-YYYY, YYYYMMDD, and an Excel serial day number of
# five digits (45481 is 2024-07-08; 1899-12-30 is day 0 in Excel's 1900 date system). A time after a date
# (`03/02/2026 12:00:00 AM`, as spreadsheets and databases export a date column; `2024-07-08T00:00:00Z`) is
# ignored, with its zone: the date written is the day of service. A dotted date
# (03.02.2026) is left unread: it is day first where it is usual.
# A place of service of two digits, tested without a regular expression (validation tests it the same way).
# How exports write "none" in a cell that has no value (a place of service, an NPI): read as an empty cell.
NO_VALUE = "('NA', 'N/A', 'NULL', 'NONE')"
TWO_DIGITS = ("strlen(place_of_service) = 2 and place_of_service between '00' and '99' "
              "and right(place_of_service, 1) between '0' and '9'")
DATE_TIME = "([ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.][0-9]*)?)? ?([AaPp][Mm]|Z|[+-][0-9]{2}:?[0-9]{2})?)?"
DATE_FORMS = [("[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}", "%m/%d/%Y"), ("[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}", "%Y/%m/%d"),
              ("[0-9]{1,2}-[0-9]{1,2}-[0-9]{4}", "%m-%d-%Y"), ("[0-9]{1,2}-[A-Za-z]{3}-[0-9]{4}", "%d-%b-%Y"),
              # Excel's d-mmm-yy, saved as shown ("8-Jul-24": 20YY, as M/D/YY), and a month written out
              # ("Jul 8, 2024", "July 8, 2024").
              ("[0-9]{1,2}-[A-Za-z]{3}-[0-9]{2}", "%d-%b-%Y"), ("[A-Za-z]{3} [0-9]{1,2}, [0-9]{4}", "%b %d, %Y"),
              ("[A-Za-z]{4,9} [0-9]{1,2}, [0-9]{4}", "%B %d, %Y")]


def _date_text(shape: str) -> str:
    """The date part of a cell of `shape`; a two-digit year as 20YY."""
    text = f"regexp_extract(date_of_service, '^{shape}')"
    return f"regexp_replace({text}, '-([0-9]{{2}})$', '-20\\1')" if shape.endswith("-[0-9]{2}") else text


# The usual shapes (a plain YYYY-MM-DD or M/D/YYYY) are tried first: the others cost a regular expression more.
OTHER_DATES = "\n".join(
    f"         when regexp_full_match(date_of_service, '{shape}{DATE_TIME}')\n"
    f"             then try_strptime({_date_text(shape)}, '{form}')"
    for shape, form in DATE_FORMS)
PARSED_COLUMNS = """
    claim_id, line_number, try_cast(line_number as double), patient_id, date_of_service,
    case when strlen(date_of_service) = 10 and date_of_service[5] = '-' and date_of_service[8] = '-'
              and date_of_service[1] between '0' and '9'
             then try_strptime(date_of_service, '%Y-%m-%d')
         when regexp_full_match(date_of_service, '[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}__DATE_TIME__')
             then try_strptime(regexp_extract(date_of_service, '^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}'), '%Y-%m-%d')
         when regexp_full_match(date_of_service, '[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}')
             then try_strptime(date_of_service, '%m/%d/%Y')
         when regexp_full_match(date_of_service, '[0-9]{1,2}/[0-9]{1,2}/[0-9]{2}__DATE_TIME__')
             then try_strptime(regexp_replace(regexp_extract(date_of_service, '^[0-9]{1,2}/[0-9]{1,2}/[0-9]{2}'),
                                              '/([0-9]{2})$', '/20\\1'), '%m/%d/%Y')
         when regexp_full_match(date_of_service, '[0-9]{8}') then try_strptime(date_of_service, '%Y%m%d')
         when regexp_full_match(date_of_service, '[0-9]{5}([.][0-9]*)?')
             then date '1899-12-30' + split_part(date_of_service, '.', 1)::integer
__OTHER_DATES__
    end::date,
    -- A code cell that carries modifiers ("76120-26") gives its code and modifiers, joined with those of the
    -- modifier columns ("76120-26" with 59 in a modifier column is 76120 with 26 and 59): every modifier
    -- written is one the payer reads.
    -- A code with its description after it, as some systems export the column ("76120 - CINE/VIDEO X-RAYS",
    -- "99213 Office visit"), is the code: the description's first word has three letters or more, so no
    -- modifier is taken for one.
    case when code_modifiers is null and strlen(code_cell) > 5
              and regexp_full_match(code_cell, '[A-Z0-9]{5}\\s*[-:,]?\\s+[A-Z]{3}.*')
         then left(code_cell, 5)
         when code_modifiers is null then code_cell else left(code_cell, 5) end,
    units, try_cast(replace(units, ',', '') as double),
    case when code_modifiers is null then column_modifiers
         when column_modifiers = [] then code_modifiers
         else list_sort(list_distinct(list_concat(code_modifiers, column_modifiers))) end,
    try_cast(replace(replace(charge, '$', ''), ',', '') as decimal(14,2)),
    __NPI_rendering_npi__, __NPI_billing_npi__,
    -- Two digits, as nearly every line has them, are kept without the regular expression, which costs more.
    -- An export's way of writing "none" (N/A, NULL) is no place of service: the default, as an empty cell.
    case when place_of_service is null then '11'
         when __TWO_DIGITS__ then place_of_service
         when upper(place_of_service) in __NO_VALUE__ then '11'
         -- A three-digit form of a code (011, as some systems pad it) is the code.
         when regexp_full_match(place_of_service, '0?\\d{1,2}(\\.0+)?')
             then lpad(right(split_part(place_of_service, '.', 1), 2), 2, '0')
         -- The code with its name after it, as some systems export the column ("22 - On Campus-Outpatient
         -- Hospital", "11 Office", "11 (Office)", "11 – Office"); anything else stays as written, and
         -- validation quarantines it.
         when regexp_full_match(place_of_service, '\\d{1,2}(\\s*[^0-9A-Za-z\\s]\\s*|\\s+)[(\\[]?[A-Za-z].*')
             then lpad(regexp_extract(place_of_service, '^\\d{1,2}'), 2, '0')
         else place_of_service end,
    -- A UB-04 type of bill (0131, 131, 0851: facility, care type, frequency) is only ever on a facility's claim.
    case when lower(claim_type) like 'inst%' or lower(claim_type) in ('i', '837i', 'ub04', 'ub-04')
              or lower(claim_type) like 'hosp%' or lower(claim_type) like 'facil%'
              or regexp_full_match(claim_type, '0?[1-9][0-9][0-9A-Za-z]')
         then 'institutional' else 'professional' end,
    -- Most lines carry one or two diagnoses in cells of their own: the same list without the list functions.
    case when diagnoses is null and diagnosis_3 is null and diagnosis_4 is null
         then case when dx_1 = '' then case when dx_2 = '' then [] else [dx_2] end
                   when dx_2 = '' or dx_2 = dx_1 then [dx_1]
                   else [dx_1, dx_2] end
         else list_distinct(list_filter(list_transform(
                  list_concat([diagnosis_1, diagnosis_2, diagnosis_3, diagnosis_4],
                              coalesce(regexp_split_to_array(diagnoses, '[,;|\\s]+'), [])),
                  lambda d: case when __DOT_AFTER_CATEGORY_d__ or trim(d, ' .') = ''
                                      then replace(upper(trim(d)), '.', '')
                                 else upper(trim(d)) end), lambda d: d is not null and d <> '')) end,
    payer,
    -- A locality as MAC-LL; the same digits written otherwise (01112 05, 0111205, or 1112-5 from a number
    -- cell that lost its leading zero) are put back in that shape.
    case when locality is null or regexp_full_match(locality, '[0-9]{5}-[0-9]{2}') then locality
         when regexp_full_match(locality, '[0-9]{1,5}\\s*[-\\s]\\s*[0-9]{1,2}')
             then lpad(regexp_extract(locality, '^[0-9]+'), 5, '0') || '-'
                  || lpad(regexp_extract(locality, '[0-9]+$'), 2, '0')
         when regexp_full_match(locality, '[0-9]{6,7}') then left(lpad(locality, 7, '0'), 5) || '-' || right(locality, 2)
         else upper(locality) end,
    -- A ZIP's first five digits; six to nine digits are a ZIP+4 whose leading zeros a number cell lost
    -- (07030-1234 stored as 70301234), not a ZIP to cut after five.
    case when service_zip is null then null
         -- No digit at all (ABCDE): kept as written, for the price note to quote, not read as ZIP 00000.
         when __ZIP_DIGITS__ = '' then upper(service_zip)
         when strlen(__ZIP_DIGITS__) between 6 and 9 then left(lpad(__ZIP_DIGITS__, 9, '0'), 5)
         else lpad(__ZIP_DIGITS__, 5, '0') end
"""


def dot_after_category(cell: str) -> str:
    """SQL: the diagnosis `cell` (trimmed, upper-cased) has no dot, or one only, where ICD-10-CM puts it: after
    the category's three characters. Only then are its dots dropped; a code with a dot anywhere else (`I1.0`) or
    a second one (`R13.1.0`) keeps them and so fails the shape check (assets/rules/documentation.py) instead of
    passing without them."""
    return f"(strpos({cell}, '.') = 0 or (strpos({cell}, '.') = 4 and strpos(substr({cell}, 5), '.') = 0))"


# An NPI written in groups ("1234-567-893", "1234 567 893") or from a number cell ("1234567893.0") is its ten
# digits; "N/A" and the like are no NPI, as for the place of service; anything else stays as written, for the
# check digit to judge. Ten characters, as nearly every NPI
# is written, are kept without the regular expressions.
NPI_READ = """case when strlen({npi}) = 10 then {npi}
     when upper({npi}) in __NO_VALUE__ then null
     when regexp_full_match(regexp_replace(regexp_replace({npi}, '\\.0+$', ''), '[\\s-]', '', 'g'), '[0-9]{{10}}')
         then regexp_replace(regexp_replace({npi}, '\\.0+$', ''), '[\\s-]', '', 'g')
     else {npi} end"""
# A ZIP's digits before any dash; a number column's ".0" after them is none of them (12345.0 is 12345).
ZIP_DIGITS = "split_part(regexp_replace(regexp_replace(service_zip, '\\.0+$', ''), '[^0-9-]', '', 'g'), '-', 1)"
for _name, _sql in (("__NPI_rendering_npi__", NPI_READ.format(npi="rendering_npi")),
                    ("__NPI_billing_npi__", NPI_READ.format(npi="billing_npi")),
                    ("__ZIP_DIGITS__", ZIP_DIGITS),
                    ("__DOT_AFTER_CATEGORY_d__", dot_after_category("upper(trim(d))")),
                    ("__DATE_TIME__", DATE_TIME), ("__OTHER_DATES__", OTHER_DATES), ("__TWO_DIGITS__", TWO_DIGITS),
                    ("__NO_VALUE__", NO_VALUE)):
    PARSED_COLUMNS = PARSED_COLUMNS.replace(_name, _sql)
# The helper columns of the code and its modifiers: the code cell upper-cased, the modifiers it carries
# after the code (sorted, distinct; null for a cell that carries none) and those of the modifier columns.
# What Excel saves as the value of a formula it cannot work out (=bob typed as a reviewer's name, a lookup of a
# patient that found none): never an identifier.
EXCEL_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
                          "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#UNKNOWN!", "#CONNECT!", "#BUSY!"})
CODE_WITH_MODIFIERS = "[A-Z0-9]{5}([ -]+[A-Z0-9]{2})+"
MODIFIER_COLUMNS = f"""
    upper(hcpcs) as code_cell,
    case when strlen(hcpcs) > 5 and regexp_full_match(upper(hcpcs), '{CODE_WITH_MODIFIERS}')
         then list_sort(list_distinct(regexp_split_to_array(trim(substr(upper(hcpcs), 6), ' -'), '[ -]+')))
    end as code_modifiers,
    -- Most lines carry one modifier or none: the same list without the list functions. A modifier cell that
    -- holds several ("26,TC", "26 TC", "26-TC") is split as the modifiers column is; one that says "none"
    -- (N/A, NULL) holds none.
    case when modifiers is null and modifier_2 is null and modifier_3 is null and modifier_4 is null
              and coalesce(strlen(modifier_1), 0) <= 2
         then case when upper(trim(modifier_1)) <> '' then [upper(trim(modifier_1))] else [] end
         else list_sort(list_distinct(list_filter(list_transform(
                  flatten(list_transform([modifier_1, modifier_2, modifier_3, modifier_4, modifiers],
                                         lambda cell: coalesce(regexp_split_to_array(cell, '[,;:|\\s-]+'), []))),
                  lambda m: upper(trim(m))), lambda m: m is not null and m not in ('', 'N/A', 'NULL', 'NONE'))))
    end as column_modifiers
"""
# A text staging table (Excel and 837P rows) has the columns the readers name, all text.
TEXT_COLUMNS = ", ".join(f"{name} varchar" for name in CANONICAL)
# The parallel CSV scanner cannot pad short rows once a quoted field holds a line break, and says so.
SERIAL_ONLY = "does not support null_padding in conjunction with quoted new lines"


@dataclass
class StagedFile:
    """One input's cells in a temporary table; `rows` selects its rows as text (source_row, CANONICAL)."""

    table: str
    rows: str


def parsed_rows_sql(text: str, source: str = "?, ?, ?", shards: int = 1) -> str:
    """The select that parses the text rows of `text` (source_row, the canonical columns, extra_cells,
    void_claim) into the
    columns of `raw_claim_rows`, not yet judged scrubbable, each with its patient shard of `shards`
    (assets/shards.py); `source` gives batch_id, file_index and source_file (bound, by default)."""
    from .shards import shard_sql

    # The first two diagnosis cells as codes ('' for none), worked out once for the list's usual case (see
    # dot_after_category).
    codes = ", ".join(
        f"coalesce(case when {dot_after_category(f'dx_cell_{n}')} or trim(dx_cell_{n}, '.') = '' "
        f"then replace(dx_cell_{n}, '.', '') "
        f"else dx_cell_{n} end, '') as dx_{n}" for n in (1, 2))
    cells = ", ".join(f"upper(trim(diagnosis_{n})) as dx_cell_{n}" for n in (1, 2))
    return (f"select {source}, source_row, {PARSED_COLUMNS}, null::boolean, {shard_sql(shards)}, extra_cells, "
            "void_claim "
            f"from (select *, {codes}, {MODIFIER_COLUMNS} from (select *, {cells} from ({text})))")


def _select_canonical(columns: dict[int, str], width: int) -> str:
    parts = []
    for name in CANONICAL:
        position = next((p for p, n in columns.items() if n == name), None)
        if position is None or position >= width:
            parts.append(f"null::varchar as {name}")
        else:
            cell = f"c{position}"
            # nullif(trim(cell), ''), without trim's copy of the usual cell: ASCII only (trim also strips
            # Unicode spaces) with no space at either end.
            parts.append(f"case when {cell} like ' %' or {cell} like '% ' or strlen({cell}) <> length({cell}) "
                         f"then nullif(trim({cell}), '') else nullif({cell}, '') end as {name}")
    return ", ".join(parts)


# What DuckDB's CSV errors mean, in plain words: its message quotes the offending line, which holds patient
# data, so only where the problem is and these words are kept.
CSV_PROBLEMS = [
    ("unterminated quote", "a quote is opened and never closed"),
    ("maximum line size", "a line longer than 10 MB"),
    ("invalid unicode", "text that is not valid in the file's encoding"),
    ("not utf-8 encoded", "text that is not valid in the file's encoding"),
    ("expected number of columns", "a row with more cells than the header"),
]


def _csv_error(path: Path, exc: duckdb.Error) -> InputFileError:
    """One line for a file DuckDB cannot read: where, and what, never the line itself (see CSV_PROBLEMS)."""
    text = str(exc)
    where = re.search(r"on line:? (\d+)", text, re.IGNORECASE)
    at = f" at line {where.group(1)}" if where else ""
    what = next((words for mark, words in CSV_PROBLEMS if mark in text.lower()), type(exc).__name__)
    return InputFileError(f"{path}: cannot be read as CSV{at} ({what})")


def _refuse_swallowed_rows(con, table: str, path: Path, width: int) -> None:
    """A quote opened and never closed makes the rest of the file one cell of its row, the last one read: the
    rows after it would be lost without a word. Such a file is refused, naming the row (a quote inside an
    unquoted cell, 5" tall, is read as it is and leaves no line break in the last row)."""
    broken = " or ".join(f"contains(c{i}, chr(10)) or contains(c{i}, chr(13))" for i in range(width))
    last = con.execute(f"select rowid + 1, {broken} from {table} order by rowid desc limit 1").fetchall()
    if last and last[0][1]:
        raise InputFileError(f"{path}: a quote opened in data row {last[0][0]:,} is never closed, so every line "
                             "after it would be read into that row: close the quote (or remove it) and run again")


def _refuse_rows_in_a_cell(con, table: str, path: Path, width: int, delimiter: str) -> None:
    """A quote opened in one row's cell and closed only in a later row (two stray quotes: `"Pt reports`, then
    `size 3"`) reads the lines between into that cell: those rows would be lost without a word. A cell with a
    line break followed by a line holding a row's worth of delimiters is such a cell (a note written on two
    lines is not), and its file is refused, naming the row."""
    if width < 2:
        return
    pattern = f"[\r\n][^\r\n]*([{delimiter}][^\r\n]*){{{width - 1}}}"
    swallowed = " or ".join(f"((strpos(c{i}, chr(10)) > 0 or strpos(c{i}, chr(13)) > 0) "
                            f"and regexp_matches(c{i}, $pattern))" for i in range(width))
    found = con.execute(f"select rowid + 1 from {table} where {swallowed} order by rowid limit 1",
                        {"pattern": pattern}).fetchall()
    if found:
        raise InputFileError(f"{path}: a quote opened in data row {found[0][0]:,} is closed only rows later, so "
                             "the lines between would be read into that row: close the quote where it belongs "
                             "(or remove it) and run again")


def stage_csv(con: duckdb.DuckDBPyConnection, path: Path, file_index: int, mapping: dict[str, str],
              database: str = "") -> StagedFile:
    """Read a CSV file's cells, as DuckDB returns its rows, into a temporary table (or a table of `database`):
    its row id + 1 is the source row. Not inside a transaction: a failed first read would end it."""
    encoding = detect_encoding(path)
    headers, delimiter, skip = read_csv_header(path, encoding, mapping)
    columns = map_headers(headers, mapping, path)
    width = len(headers)
    # One cell more than the header names: a row whose only text stands past the header's columns (a note
    # typed beside the table) is a row read, and quarantined, not an empty one passed over.
    names = {f"c{i}": "varchar" for i in range(width + 1)}
    duck_encoding = "utf-8" if encoding in ("utf-8-sig", WINDOWS_1252) else encoding
    table = f"{database}.staged_cells_{file_index}" if database else f"staged_cells_{file_index}"
    # Row ids follow the file only when the table keeps the order the scanner read the rows in.
    with insertion_order(con), utf8_copy(con, path, encoding) as readable:
        for parallel in (True, False):
            try:
                # null_padding reads short rows (the missing cells become quarantine reasons) and
                # strict_mode=false drops extra cells. In parallel where the file allows it; a file with a
                # quoted line break is read again by the single-threaded scanner, which pads it right.
                con.execute(
                    f"""
                    create or replace {"" if database else "temp"} table {table} as
                    select * from read_csv(?, delim = ?, header = false, skip = ?, columns = ?, quote = '"',
                                           escape = '"', null_padding = true, ignore_errors = false,
                                           strict_mode = false, parallel = ?, encoding = ?,
                                           auto_detect = false, max_line_size = 10000000)
                    """,
                    [str(readable), delimiter, skip, names, parallel, duck_encoding],
                )
                break
            except duckdb.Error as exc:
                if not (parallel and SERIAL_ONLY in str(exc)):
                    raise _csv_error(path, exc) from None
    quotes = _quotes(path)
    if quotes % 2:
        _refuse_swallowed_rows(con, table, path, width)
    if quotes:
        # An odd count too: a pair of stray quotes swallowing rows, beside a quote inside an unquoted cell (5").
        _refuse_rows_in_a_cell(con, table, path, width, delimiter)
    # Rows of empty cells are not rows, but they keep their place in the numbering; so do empty lines, which the
    # reader passes over (counted apart, where the file has any).
    empty = " and ".join(f"coalesce(trim(c{i}), '') = ''" for i in range(width + 1))
    source_row, gaps = "rowid + 1", ""
    # A UTF-16 file's empty lines are two-byte line feeds the byte scan does not see: it is read for them
    # (such exports are small: Excel's "Unicode text").
    if encoding == "utf-16" or _blank_lines(path):
        found = _row_gaps(path, encoding, delimiter, skip)
        if found:
            # Empty lines one after another share their count of rows before: the last of them counts them all.
            last = {rows_before: number for number, rows_before in enumerate(found, start=1)}
            values = ", ".join(f"({rows_before}, {number})" for rows_before, number in last.items())
            source_row = "staged.rowid + 1 + coalesce(gap.number, 0)"
            gaps = (f" staged asof left join (values {values}) gap(rows_before, number) "
                    "on staged.rowid + 1 > gap.rows_before")
    rows = (f"select {source_row} as source_row, {_select_canonical(columns, width)}, "
            f"coalesce(trim(c{width}), '') <> '' as extra_cells, false as void_claim from {table}{gaps} "
            f"where not ({empty})")
    return StagedFile(table, rows)


class StagedExports:
    """What the read stage takes a file's staged cells from, when the command staged them ahead of the run."""

    def take(self, path: Path, file_index: int, mapping: dict[str, str]) -> StagedFile | None:
        raise NotImplementedError


class CsvPrefetch(StagedExports):
    """CSV exports staged ahead of their run, on a thread, while Dagster starts up (Python work that leaves a
    core idle). The cells go to an in-memory database that every connection of the
    process sees; the read stage takes a file's from there when path, size, modification time, position
    and header mapping match, and stages the file itself otherwise (a file that failed here fails there,
    with its own message)."""

    DATABASE = "claimscrub_prefetch"
    ONE_THREAD_BYTES = 256 << 20

    def __init__(self, con: duckdb.DuckDBPyConnection, files: list[Path], mapping: dict[str, str]) -> None:
        self.con = con.cursor()
        self.con.execute(f"attach ':memory:' as {self.DATABASE}")
        self.mapping = mapping
        self.staged: dict[tuple, StagedFile] = {}
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.done = self.pool.submit(self._stage, [Path(f) for f in files])

    @staticmethod
    def _key(path: Path, file_index: int) -> tuple:
        stat = path.stat()
        return str(path.resolve()), file_index, stat.st_size, stat.st_mtime_ns

    def _stage(self, files: list[Path]) -> None:
        # On one of DuckDB's threads, which stages about ONE_THREAD_BYTES while Python starts up on the other
        # core: the read stage then starts about as the staging ends. Bigger exports are staged on all of
        # DuckDB's threads, not to keep the read stage waiting on one. The setting holds for the database; it
        # is back to its value when the staging ends.
        small = sum(path.stat().st_size for path in files if path.is_file()) <= self.ONE_THREAD_BYTES
        with database_settings(self.con, **({"threads": 1} if small else {})):
            for index, path in enumerate(files):
                try:
                    if detect_kind(path) == "csv":
                        key = self._key(path, index)
                        self.staged[key] = stage_csv(self.con, path, index, self.mapping, self.DATABASE)
                except (InputFileError, OSError, duckdb.Error):
                    continue

    def take(self, path: Path, file_index: int, mapping: dict[str, str]) -> StagedFile | None:
        """The file's staged cells, once (they are dropped when landed), or None."""
        if self.done.exception() is not None or mapping != self.mapping:
            return None
        try:
            return self.staged.pop(self._key(path, file_index), None)
        except OSError:
            return None

    def close(self) -> None:
        self.pool.shutdown()
        self.con.execute(f"detach {self.DATABASE}")
        self.con.close()


class NothingStaged(StagedExports):
    """The staged exports of a run whose files were not staged ahead (the nightly job, the UI): the read stage
    stages each file itself."""

    def take(self, path: Path, file_index: int, mapping: dict[str, str]) -> StagedFile | None:
        return None


@contextmanager
def prefetching(con: duckdb.DuckDBPyConnection, files: list[Path],
                mapping: dict[str, str]) -> Iterator[CsvPrefetch]:
    """Stage the CSV exports of a run about to start in this process (see CsvPrefetch); the run's read stage
    gets the staging as its `staged_exports` resource."""
    prefetch = CsvPrefetch(con, files, mapping)
    try:
        yield prefetch
    finally:
        prefetch.close()


def staging_table(con: duckdb.DuckDBPyConnection, file_index: int) -> StagedFile:
    """An empty temporary table for readers that land rows as text themselves (Excel, 837P)."""
    table = f"staged_text_{file_index}"
    con.execute(f"""create or replace temp table {table} (
                        batch_id varchar, file_index integer, source_file varchar, source_row bigint,
                        {TEXT_COLUMNS}, void_claim boolean)""")
    return StagedFile(table, f"select source_row, {', '.join(CANONICAL)}, false as extra_cells, "
                             f"coalesce(void_claim, false) as void_claim from {table}")


@contextmanager
def database_settings(con: duckdb.DuckDBPyConnection, **values: bool | int) -> Iterator[None]:
    """DuckDB settings for the time of the block, back to what they were after it. They hold for the whole
    database, not one connection."""
    before = {name: con.execute(f"select current_setting('{name}')").fetchall()[0][0] for name in values}
    for name, value in values.items():
        con.execute(f"set {name} = {_setting_literal(value)}")
    try:
        yield
    finally:
        for name, value in before.items():
            con.execute(f"set {name} = {_setting_literal(value)}")


def _setting_literal(value: bool | int) -> str:
    return str(value).lower() if isinstance(value, bool) else str(int(value))


def insertion_order(con: duckdb.DuckDBPyConnection):
    """Queries keep the order of the rows they read (a table keeps the order of the rows inserted), for the
    time of the block."""
    return database_settings(con, preserve_insertion_order=True)


def land_rows(con: duckdb.DuckDBPyConnection, staged: StagedFile, table: str, batch_id: str, file_index: int,
              name: str, shards: int = 1) -> int:
    """Parse one staged file's rows into `table` (raw_claim_rows); returns how many rows it holds. The caller
    drops the staging table once it has committed: a file staged ahead (CsvPrefetch) is in another database,
    which a transaction that writes `table` cannot also write."""
    # In file order: lines.csv is written from the rows as stored (assets/outputs.py).
    with insertion_order(con):
        return con.execute(f"insert into {table} {parsed_rows_sql(staged.rows, shards=shards)}",
                           [batch_id, file_index, name]).fetchall()[0][0]


def _whole_number(value: object) -> bool:
    """Whether an Excel cell holds a number of up to five digits with nothing after its point."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
            and 0 < value < 100_000)


def _cell_text(value: object) -> str | None:
    """An Excel cell as the text a CSV export would have held."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (time, timedelta)):
        # "26:59" typed into a modifier column is a duration to Excel: read back as typed (hours and minutes,
        # seconds only where there are some), not as 1 day, 2:59:00.
        seconds = (round(value.total_seconds()) if isinstance(value, timedelta)
                   else value.hour * 3600 + value.minute * 60 + value.second)
        hours, rest = divmod(seconds, 3600)
        return f"{hours}:{rest // 60:02d}" + (f":{rest % 60:02d}" if rest % 60 else "")
    if isinstance(value, float) and math.isfinite(value):
        # Excel shows (and saves as CSV) 15 significant digits: =0.1*3*10 is 3, not 3.0000000000000004.
        value = float(f"{value:.15g}")
        if value.is_integer():
            return str(int(value))
    return str(value)


def _open_first_sheet(path: Path, mapping: dict[str, str] | None = None):
    """The workbook, its first sheet's header cells, and an iterator over the rows below the header."""
    workbook, headers, rows, _, _ = _first_sheet_header(path, mapping or {})
    return workbook, headers, rows


MERGE_CELL = re.compile(rb'<(?:\w+:)?mergeCell ref="([A-Z]+)([0-9]+):([A-Z]+)([0-9]+)"')


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


@functools.lru_cache(maxsize=16)
def _sheet_merges(name: str, size: int, mtime_ns: int, member: str) -> frozenset[tuple[int, int, int, int]]:
    """The merged ranges of one sheet of a workbook (first column, top row, last column, bottom row); read once
    per version of the file (the command inspects a workbook before the run, then the run reads it). They
    follow the rows in the sheet's file, which is read through for them."""
    spans, tail = set(), b""
    with zipfile.ZipFile(name) as archive, archive.open(member) as source:
        while chunk := source.read(1 << 20):
            text = tail + chunk
            spans.update((_column_number(a), int(r1), _column_number(b), int(r2))
                         for a, r1, b, r2 in MERGE_CELL.findall(text))
            tail = text[-200:]
    return frozenset(spans)


def _merged_header(path: Path, sheet, row: int, cells: list[str]) -> list[str]:
    """The header cells with a header merged over several cells ("Modifiers" over four columns) given to each
    of them: Excel keeps its text in the first cell only, and the modifiers or diagnoses under the others would
    go unread."""
    member = getattr(sheet, "_worksheet_path", None)  # where openpyxl's read-only sheet reads its rows from
    if not member:
        return cells
    stat = path.stat()
    try:
        spans = _sheet_merges(str(path.resolve()), stat.st_size, stat.st_mtime_ns, member)
    except (KeyError, zipfile.BadZipFile):
        return cells
    merged = list(cells)
    for first, top, last, bottom in spans:
        if top <= row <= bottom and first <= len(merged) and merged[first - 1].strip():
            merged += [""] * max(0, last - len(merged))
            for column in range(first + 1, last + 1):
                merged[column - 1] = merged[column - 1] or merged[first - 1]
    return merged


def _other_claim_sheets(workbook, read: int, mapping: dict[str, str]) -> list[str]:
    """The titles of the sheets after sheet `read` (1-based, the one whose claims are read) that have a header
    row naming every required column too: a month a sheet, of which only the first would be scrubbed."""
    titles = []
    for candidate in workbook.worksheets[read:]:
        for row in candidate.iter_rows(max_row=HEADER_SEARCH_ROWS, values_only=True):
            if row and names_every_required_column([_cell_text(c) or "" for c in row], mapping):
                titles.append(candidate.title)
                break
    return titles


def _first_sheet_header(path: Path, mapping: dict[str, str]):
    """The workbook, the header cells of its first sheet (as read_csv_header finds them), an iterator over the
    rows below the header, the rows above it that were skipped, and the sheet read when not the first.

    Where the first sheet has no row naming every required column within its first rows and a later sheet has
    one (a cover or notes sheet before the claims), that sheet is read, and its number and title are returned
    last (else None). Where none has, the first sheet's first row is its header, and the
    missing columns are named from it."""
    from openpyxl import load_workbook

    try:
        # data_only: a formula cell is read as the value Excel cached for it, never evaluated; external
        # links are not followed (keep_links=False), so nothing outside the file is ever opened.
        # openpyxl goes by the name and refuses a workbook named .xls; given the bytes, it reads what is
        # there.
        source = path if path.suffix.lower() in EXCEL_SUFFIXES else io.BytesIO(path.read_bytes())
        workbook = load_workbook(source, read_only=True, data_only=True, keep_links=False)
        sheets = list(workbook.worksheets)
        for candidate in sheets:
            # Read every row and column there is: a read-only sheet otherwise stops at the range its file
            # declares, which some programs write wrong (A1:A1), and the rows past it would go unread.
            if hasattr(candidate, "reset_dimensions"):
                candidate.reset_dimensions()
        sheet = sheets[0]
    except Exception as exc:  # openpyxl raises many kinds for a damaged archive
        raise InputFileError(f"{path}: cannot be read as an Excel workbook ({type(exc).__name__})") from None
    seen, numbers, scanned = [], [], []
    for index, candidate in enumerate(sheets):
        above, at = [], []
        for number, row in enumerate(_damaged_above_header(candidate, path), start=1):
            if row and any(c is not None and str(c).strip() for c in row):
                cells = [_cell_text(c) or "" for c in row]
                if names_every_required_column(cells, mapping):
                    rest = candidate.iter_rows(min_row=number + 1, values_only=True)
                    cells = _merged_header(path, candidate, number, cells)
                    return workbook, cells, rest, above, (index + 1, candidate.title) if index else None
                above.append(cells)
                at.append(number)
                if len(above) == HEADER_SEARCH_ROWS:
                    break
        if index == 0:
            seen, numbers = above, at
        elif above:
            scanned.append((index, candidate, above, at))
    # No sheet names every required column. A later sheet naming more of them than the first (a claims sheet
    # short of one column, behind a cover sheet) is the one the message is about: not the cover's cells.
    first_named = max((required_named(cells, mapping) for cells in seen), default=0)
    for index, candidate, above, at in scanned:
        best = likeliest_header(above, mapping)
        if required_named(above[best], mapping) > first_named:
            return (workbook, above[best], candidate.iter_rows(min_row=at[best] + 1, values_only=True), [],
                    (index + 1, candidate.title))
    if seen:
        if len(seen) == HEADER_SEARCH_ROWS:
            for number, row in enumerate(sheet.iter_rows(min_row=numbers[-1] + 1, max_row=numbers[-1] + HEADER_FAR_ROWS,
                                                         values_only=True), start=numbers[-1] + 1):
                if row and names_every_required_column([_cell_text(c) or "" for c in row], mapping):
                    workbook.close()
                    raise InputFileError(
                        f"{path}: the header row is row {number} of sheet {sheet.title!r}, below more than "
                        f"{HEADER_SEARCH_ROWS - 1} rows of title: claimscrub looks for it in the first "
                        f"{HEADER_SEARCH_ROWS} rows; remove the rows above it")
        # No row names every required column: the one naming most is the header, and the message names its
        # cells.
        best = likeliest_header(seen, mapping)
        return workbook, seen[best], sheet.iter_rows(min_row=numbers[best] + 1, values_only=True), [], None
    workbook.close()
    raise InputFileError(f"{path}: the first sheet is empty")


# What a cell is trimmed of, as DuckDB's trim() trims a CSV's cells: spaces, Unicode spaces. Not tabs or line
# breaks, which leave a code or a count unreadable in either kind of export (and the quarantine says so).
CELL_BLANKS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"


def stage_excel(con: duckdb.DuckDBPyConnection, path: Path, file_index: int,
                mapping: dict[str, str]) -> StagedFile:
    workbook, headers, rows = _open_first_sheet(path, mapping)
    try:
        columns = map_headers(headers, mapping, path)
        records = []
        for number, row in enumerate(_whole_sheet(rows, path), start=1):
            cells = [_cell_text(c) for c in row]
            if not any(c is not None and c.strip() for c in cells):
                continue
            record = {"source_row": number}
            for position, canonical in columns.items():
                value = cells[position] if position < len(cells) else None
                value = value.strip(CELL_BLANKS) if value else None
                record[canonical] = value or None
                # A code typed as a number lost its leading zeros to Excel (anesthesia 00100 shows as 100). Only
                # the anesthesia range has them: 7612 is a code cut short, left for the quarantine to name.
                if (canonical == "hcpcs" and position < len(row) and _whole_number(row[position])
                        and 100 <= int(row[position]) <= 1999):
                    record[canonical] = f"{int(row[position]):05d}"
            records.append(record)
    finally:
        workbook.close()
    import pandas as pd  # here: the command imports this module before it starts, and only Excel needs it

    frame = pd.DataFrame.from_records(records, columns=["source_row", *CANONICAL])
    frame = frame.astype({c: "object" for c in CANONICAL})
    staged = staging_table(con, file_index)
    con.register("incoming_rows", frame)
    try:
        con.execute(f"insert into {staged.table} by name select * from incoming_rows")
    finally:
        con.unregister("incoming_rows")
    return staged


def _damaged_above_header(sheet, path: Path):
    """A sheet's rows while its header is looked for; a sheet whose file breaks off before (its XML cut, its
    entry damaged) is refused, naming it, rather than failing on the error underneath."""
    try:
        yield from sheet.iter_rows(values_only=True)
    except (SyntaxError, zipfile.BadZipFile, zlib.error, EOFError, KeyError) as exc:
        raise InputFileError(f"{path}: the workbook's sheet {sheet.title!r} is damaged ({_one_line(str(exc))}): "
                             "open it in Excel, save it again and run again") from None


def _whole_sheet(rows, path: Path):
    """The sheet's rows; a sheet whose file breaks off below its header (damaged, or cut short in a copy) is
    refused naming the last row read, rather than failing on the XML or zip error underneath."""
    read = 0
    try:
        for row in rows:
            yield row
            read += 1
    except (SyntaxError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise InputFileError(f"{path}: the workbook is damaged below data row {read} ({_one_line(str(exc))}): "
                             "open it in Excel, save it again and run again") from None


# How alike an unread header must be to a column it could be, to be named in a note (see unread_headers).
UNREAD_LIKENESS = 0.8


# The last day of a line's range of dates, as exports head it: claimscrub reads the first day only.
THROUGH_DATES = {"todate", "dosto", "dosthru", "dosthrough", "servicedateto", "servicetodate", "svctodate",
                 "svcto", "serviceto", "thrudate", "throughdate", "datethrough", "datethru", "dateto",
                 "servicethroughdate", "servicethrudate"}


def unread_headers(headers: list[str], mapping: dict[str, str], path: Path) -> str:
    """A note naming the headers that are not read but look like a column claimscrub reads and has not found
    ("CPT Modifier X" beside no modifier column): a modifier or a place of service left behind changes what a
    line is judged by, without a word. "" when there are none; other columns of an export are not named."""
    if not headers:
        return ""
    columns = map_headers(headers, mapping, path)
    found = set(columns.values())
    unread, through = [], []
    for position, header in enumerate(headers):
        if position in columns or not normalise_header(header):
            continue
        if normalise_header(header) in THROUGH_DATES:
            through.append(_quoted_header(header))
            continue
        likeness, column = max(((_likeness(header, column), column) for column in OPTIONAL if column not in found),
                               default=(0.0, ""))
        if likeness >= UNREAD_LIKENESS:
            unread.append(f"{_quoted_header(header)} (is it {column}?)")
    notes = []
    if unread:
        notes.append(f"column{'s' if len(unread) > 1 else ''} not read: {', '.join(unread)}; a mapping file "
                     f"(--mapping) can name {'them' if len(unread) > 1 else 'it'}")
    if through:
        notes.append(f"{', '.join(through)} not read: {RANGE_JUDGED}")
    return f"{path}: {'; '.join(notes)}" if notes else ""


def export_headers(path: Path, mapping: dict[str, str]) -> list[str]:
    """The header cells of a CSV or Excel export ([] for X12)."""
    kind = detect_kind(path)
    if kind == "csv":
        return read_csv_header(path, detect_encoding(path), mapping)[0]
    if kind == "xlsx":
        workbook, headers, _ = _open_first_sheet(path, mapping)
        workbook.close()
        return headers
    return []


def inspect_export(path: Path, mapping: dict[str, str]) -> str:
    """Fail fast, before any run starts, on a file that is not a claim export at all."""
    kind = detect_kind(path)
    if kind == "csv":
        headers, _, _ = read_csv_header(path, detect_encoding(path), mapping)
        map_headers(headers, mapping, path)
    elif kind == "xlsx":
        workbook, headers, _ = _open_first_sheet(path, mapping)
        workbook.close()
        map_headers(headers, mapping, path)
    elif kind == "x12":

        inspect_837p(path)
    return kind
