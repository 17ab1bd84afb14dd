"""Pricing: pick the reference releases that judge each line, and price it at the Medicare rate.

Per-unit fee = round((work RVU x work GPCI + PE RVU x PE GPCI + MP RVU x MP GPCI) x CF, 2) in decimal, with the
RVU row of the line's component, the facility PE for a facility place of service (the non-facility PE where the
facility PE is NA), and the GPCIs of the line's locality (all 1.000 when none is known; the work GPCI floored
through the GPCI file's last day of the floor); then adjusted by the line's payment modifiers (PRICED_KEYS).
"""

from .tables import CONTEXT_COLUMNS, clear_batch

TABLES = ["rvu", "gpci", "zip", "ptp", "mue_practitioner", "mue_outpatient_hospital", "aoc"]
# Rates are set per calendar year: a release of the date's own year judges it before any other year's.
YEAR_FIRST = {"rvu", "gpci"}

# Per table and date of service, the release that judges it: the one whose period holds the date; for RVU and
# GPCI, else the one of the same year nearest the date; else (any table, a year without a release of its own
# included) the newest that starts before it; else the oldest. Among the RVU releases of the year so picked, one
# of the site's variant (QPP or not) goes first.
_YEAR_FIRST_SQL = ", ".join(f"'{t}'" for t in YEAR_FIRST)
# The order of a table's releases for a date, the variant aside.
_NEAREST = f"""case when r.table_name in ({_YEAR_FIRST_SQL}) then year(r.effective_start) = year(d.dos) end desc nulls last,
                        d.dos between r.effective_start and r.effective_end desc,
                        case when r.table_name in ({_YEAR_FIRST_SQL})
                                  and year(r.effective_start) = year(d.dos)
                             then greatest(r.effective_start - d.dos, d.dos - r.effective_end, 0) end nulls last,
                        r.effective_start <= d.dos desc,
                        case when r.effective_start <= d.dos then r.effective_start end desc,
                        r.effective_start, r.loaded_at desc, r.release_id"""
DOS_RELEASES = f"""
create or replace temp table {{dos_releases}} as
with dates as ({{dates}}),
releases as (
    select distinct release_id, table_name, effective_start, effective_end, coalesce(variant, '') as variant,
           loaded_at
    from ref_releases where table_name in ({", ".join(f"'{t}'" for t in TABLES)})
),
-- The year whose RVU releases price the date: that of the release nearest it, whatever its variant (a date of
-- a year without a release of its own is priced by the year the rule book's order picks, not by the variant).
nearest as (
    select d.dos, r.table_name, year(r.effective_start) as year,
           row_number() over (partition by d.dos, r.table_name order by {_NEAREST}) as pick
    from dates d cross join releases r
),
ranked as (
    select d.dos, r.table_name, r.release_id, d.dos between r.effective_start and r.effective_end as holds,
           row_number() over (
               partition by d.dos, r.table_name
               order by case when r.table_name = 'rvu' then year(r.effective_start) = n.year end desc nulls last,
                        case when r.table_name = 'rvu' then r.variant = $variant end desc nulls last,
                        {_NEAREST}) as pick
    from dates d cross join releases r
    join nearest n on n.dos = d.dos and n.table_name = r.table_name and n.pick = 1
)
select d.dos,
       {", ".join(f"any_value(r.release_id) filter (where r.table_name = '{t}') as {t}_release, "
                  f"coalesce(bool_or(r.holds) filter (where r.table_name = '{t}'), false) as {t}_exact"
                  for t in TABLES)}
from dates d left join ranked r on r.dos = d.dos and r.pick = 1
group by d.dos
"""

# Statuses paid outside the physician fee schedule, or priced by the contractor: never priced here.
UNPRICED_STATUSES = ("C", "X", "E", "J", "M")
# CPT Category II (quality reporting) codes: four digits and F.
CATEGORY_II = "[0-9]{4}F"

# What a line's price depends on of the line itself, besides its units: each distinct combination is a price
# context of the batch (see assets/tables.py), priced once.
CONTEXT_KEYS = ["date_of_service", "hcpcs", "component", "facility", "locality", "service_zip", "claim_type"]
BATCH_DATES = "select distinct date_of_service as dos from claim_lines where batch_id = $batch"
CONTEXTS = f"""
create or replace temp table {{context_keys}} as
select row_number() over ()::integer as context_id, *
from (select distinct {", ".join(CONTEXT_KEYS)} from {{lines}})
"""
BATCH_LINES = "claim_lines where batch_id = $batch"

# price_contexts keeps what the rules and the outputs read; the RVUs, GPCIs and conversion factor behind a fee
# stay in the reference tables, named by the context's releases. Storing a column costs about as much CPU as
# a lookup join over it, so the table holds nothing no one reads.
PRICE_SELECT = f"""
with lr as (
    select $batch as batch_id, l.context_id, l.hcpcs, l.component, l.facility, l.locality as given_locality,
           l.service_zip, l.claim_type, d.*,
           case when l.claim_type = 'institutional' then d.mue_outpatient_hospital_release
                else d.mue_practitioner_release end as mue_release,
           case when l.claim_type = 'institutional' then d.mue_outpatient_hospital_exact
                else d.mue_practitioner_exact end as mue_exact,
           case when l.claim_type = 'institutional' then 'outpatient_hospital' else 'practitioner' end
               as mue_service_type
    from {{context_keys}} l join {{dos_releases}} d on d.dos = l.date_of_service
),
located as (
    select lr.*,
           coalesce(g_given.locality_key, g_zip.locality_key, g_default.locality_key) as locality_key,
           -- A locality or ZIP the line gives that the files do not know is said, not passed over.
           case when lr.given_locality is not null and g_given.locality_key is null
                    then printf('locality %s is not a pricing locality of %s', lr.given_locality, lr.gpci_release)
                when lr.given_locality is null and lr.service_zip is not null and g_zip.locality_key is null
                    then printf('ZIP %s is not in %s', lr.service_zip, coalesce(lr.zip_release, 'any ZIP file'))
           end as place_unknown
    from lr
    left join ref_gpci g_given on g_given.release_id = lr.gpci_release and g_given.locality_key = lr.given_locality
    left join ref_zip z on z.release_id = lr.zip_release and z.zip = lr.service_zip
    left join ref_gpci g_zip on g_zip.release_id = lr.gpci_release and g_zip.mac = z.mac
                             and g_zip.locality = z.locality
    left join ref_gpci g_default on g_default.release_id = lr.gpci_release and g_default.locality_key = $locality
),
rated as (
    select located.*,
           coalesce(own.hcpcs, base.hcpcs) is not null as in_fee_schedule,
           own.hcpcs is not null as has_own_row,
           -- Indicators come from the row of the line's own component; a component without a row of its own
           -- takes the code's row without modifier (and is not priced); a code listed only with a component
           -- row (86153: 26 alone) takes that row, so it is in the fee schedule and its indicators judge.
           coalesce(own.status, base.status) as status,
           coalesce(own.pctc, base.pctc) as pctc,
           coalesce(own.mult_proc, base.mult_proc) as mult_proc,
           coalesce(own.global_days, base.global_days) as global_days,
           coalesce(own.bilat_surg, base.bilat_surg) as bilat_surg,
           coalesce(own.asst_surg, base.asst_surg) as asst_surg,
           coalesce(own.co_surg, base.co_surg) as co_surg,
           coalesce(own.team_surg, base.team_surg) as team_surg,
           located.facility and own.pe_facility_na as facility_pe_na,
           own.work_rvu,
           case when located.facility and not own.pe_facility_na then own.pe_facility
                else own.pe_nonfacility end as pe_rvu,
           own.mp_rvu, own.conversion_factor,
           case when g.locality_key is null then 1.000
                when located.dos <= greatest(g.work_floor_through, $floor_through::date) then g.work_gpci_floor
                else g.work_gpci end::decimal(6,3) as work_gpci,
           coalesce(g.pe_gpci, 1.000)::decimal(6,3) as pe_gpci,
           coalesce(g.mp_gpci, 1.000)::decimal(6,3) as mp_gpci,
           m.mue_value, m.mai
    from located
    left join ref_rvu own on own.release_id = located.rvu_release and own.hcpcs = located.hcpcs
                          and own.modifier = case located.component when 'global' then '' else located.component end
    left join (select * from ref_rvu where modifier in ('', '26', 'TC')
               qualify row_number() over (partition by release_id, hcpcs order by modifier) = 1) base
           on base.release_id = located.rvu_release and base.hcpcs = located.hcpcs
    left join ref_gpci g on g.release_id = located.gpci_release and g.locality_key = located.locality_key
    left join ref_mue m on m.release_id = located.mue_release and m.service_type = located.mue_service_type
                        and m.hcpcs = located.hcpcs
),
fees as (
    -- Decimal throughout, rounded half up to the cent. Codes paid outside this fee schedule (and Category II
    -- quality codes) are not priced here.
    select rated.*,
           case when has_own_row and status not in ({", ".join(f"'{s}'" for s in UNPRICED_STATUSES)})
                     and not regexp_full_match(hcpcs, '{CATEGORY_II}') then
               round((work_rvu * work_gpci + pe_rvu * pe_gpci + mp_rvu * mp_gpci) * conversion_factor, 2)
           end::decimal(14,2) as unit_fee
    from rated
)
select batch_id, context_id, rvu_release, gpci_release, ptp_release, mue_release,
       case when rvu_exact and gpci_exact and ptp_exact and mue_exact and aoc_exact then 'exact'
            else 'approximate' end,
       coalesce(locality_key, 'national'), in_fee_schedule, status, pctc, mult_proc, unit_fee, mue_value, mai,
       global_days, bilat_surg, asst_surg, co_surg, team_surg, aoc_release,
       case when not in_fee_schedule then 'not in the fee schedule: not priced'
            when regexp_full_match(hcpcs, '{CATEGORY_II}') then 'CPT Category II code: not priced'
            when status = 'C' then 'carrier-priced (status C): not priced'
            when status = 'M' then 'measurement code (status M): reported, not paid: not priced'
            when status in ({", ".join(f"'{s}'" for s in UNPRICED_STATUSES)})
                then printf('status %s, paid under another schedule: not priced here', status)
            when not has_own_row then printf('no RVU row of its own for the %s component: not priced', component)
            else nullif(concat_ws('; ',
                     case when facility_pe_na then 'facility PE is NA: priced at the non-facility PE' end,
                     place_unknown || ': priced at ' || coalesce(locality_key, 'the national amount')), '')
       end as price_note
from fees
"""
PRICE = f"insert into price_contexts (batch_id, context_id, {', '.join(CONTEXT_COLUMNS)})\n{PRICE_SELECT}"

# The modifiers that change what Medicare pays for a line (RULES.md, "Payment adjustments by modifier").
PAYMENT_MODIFIERS = ("50", "62", "66", "80", "81", "82", "AS")
# The per-unit fee after those modifiers, each factor applied and rounded to the cent in turn: bilateral (by
# the code's indicator), co-surgery, assistant (80/81/82, else AS); team surgery (66) is priced by report.
ADJUSTED_FEE = """
case when list_contains(l.modifiers, '66') then null
     else round(round(round(c.unit_fee
          * case when not list_contains(l.modifiers, '50') then 1.00
                 when c.bilat_surg = '1' then 1.50 when c.bilat_surg = '3' then 2.00 else 1.00 end, 2)
          * case when list_contains(l.modifiers, '62') then 0.625 else 1.000 end, 2)
          * case when list_contains(l.modifiers, '80') or list_contains(l.modifiers, '81')
                      or list_contains(l.modifiers, '82') then 0.160
                 when list_contains(l.modifiers, 'AS') then 0.136 else 1.000 end, 2) end"""

# A line's expected allowed (`l`, the line; `c`, its price context): its context's fee adjusted by its payment
# modifiers, times its units.
EXPECTED_ALLOWED = f"""
round(case when list_has_any(l.modifiers, [{", ".join(f"'{m}'" for m in PAYMENT_MODIFIERS)}]) then {ADJUSTED_FEE}
           else c.unit_fee end * l.units, 2)::decimal(14,2)"""
# A line (`l`) and its context key (`k`).
CONTEXT_OF_LINE = " and ".join(f"k.{key} is not distinct from l.{key}" for key in CONTEXT_KEYS)

# Each line: its context, and its expected allowed at its context's fee (adjusted by its payment modifiers).
PRICED_KEYS = f"""
insert into priced_keys
select l.batch_id, l.line_id, k.context_id, {EXPECTED_ALLOWED}
from claim_lines l
join {{context_keys}} k on {CONTEXT_OF_LINE}
join (select * from price_contexts where batch_id = $batch) c on c.context_id = k.context_id
where l.batch_id = $batch
"""

# Lines of earlier batches that may take part in a batch's judgement (`history_candidates`, with the columns of
# claim_lines a price reads), priced as the batch's lines are: under the releases loaded now, which judge their
# dates now (a surgery's global days are those of the release that judges its date, RULES.md), with the
# batch's settings. Their working tables are named apart from the price stage's.
HISTORY_PRICED = f"""
create or replace temp table history_priced as
select l.batch_id, l.line_id, c.* exclude (batch_id, context_id), {EXPECTED_ALLOWED} as expected_allowed
from history_candidates l
join {{context_keys}} k on {CONTEXT_OF_LINE}
join ({PRICE_SELECT}) c(batch_id, context_id, {", ".join(CONTEXT_COLUMNS)}) on c.context_id = k.context_id
"""

# The working tables and sources of a pricing: the batch's (price_batch), or its history's (price_history),
# whose tables are named apart from the price stage's; each fills the placeholders of the statements above.
BATCH_PRICING = {"{dos_releases}": "dos_releases", "{context_keys}": "context_keys", "{dates}": BATCH_DATES,
                 "{lines}": BATCH_LINES}
HISTORY_PRICING = {"{dos_releases}": "history_dos_releases", "{context_keys}": "history_context_keys",
                   "{dates}": "select distinct date_of_service as dos from history_candidates",
                   "{lines}": "history_candidates"}


def _for(pricing: dict[str, str], sql: str) -> str:
    for placeholder, name in pricing.items():
        sql = sql.replace(placeholder, name)
    return sql


def price_batch(con, batch_id: str, default_locality: str = "", rvu_variant: str = "",
                floor_through: str = "") -> dict[str, int]:
    """Price a validated batch. `rvu_variant` is the site's RVU file variant ('' or 'QPP'); `floor_through` a
    later last day (YYYY-MM-DD) of the 1.0 work GPCI floor than the GPCI file's own, where the law extends it."""
    clear_batch(con, "priced_keys", batch_id)
    clear_batch(con, "price_contexts", batch_id)
    con.execute(_for(BATCH_PRICING, DOS_RELEASES), {"batch": batch_id, "variant": rvu_variant.upper()})
    con.execute(_for(BATCH_PRICING, CONTEXTS), {"batch": batch_id})
    con.execute(_for(BATCH_PRICING, PRICE), {"batch": batch_id, "locality": default_locality.upper() or None,
                                             "floor_through": floor_through or None})
    con.execute(_for(BATCH_PRICING, PRICED_KEYS), {"batch": batch_id})
    priced, unpriced = con.execute(
        """select count(expected_allowed), count(*) - count(expected_allowed)
           from priced_lines where batch_id = ?""",
        [batch_id],
    ).fetchall()[0]
    return {"priced": priced, "unpriced": unpriced}


def price_history(con, batch_id: str) -> None:
    """`history_priced`: the lines of `history_candidates` with the price context they have tonight (PRICE) and
    their expected allowed, priced with the settings batch `batch_id` was read with."""
    settings = con.execute(
        """select coalesce(default_locality, ''), coalesce(rvu_variant, ''), coalesce(work_floor_through, '')
           from batches where batch_id = ?""", [batch_id]).fetchall()
    locality, variant, floor_through = settings[0] if settings else ("", "", "")
    con.execute(_for(HISTORY_PRICING, DOS_RELEASES), {"variant": variant.upper()})
    con.execute(_for(HISTORY_PRICING, CONTEXTS))
    con.execute(_for(HISTORY_PRICING, HISTORY_PRICED), {"batch": batch_id, "locality": locality.upper() or None,
                                                        "floor_through": floor_through or None})
