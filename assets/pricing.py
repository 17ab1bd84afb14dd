"""Pricing: pick the reference releases that judge each line, and price it at the Medicare rate.

Per-unit fee = round((work RVU x work GPCI + PE RVU x PE GPCI + MP RVU x MP GPCI) x CF, 2), with the RVU row
of the line's component, the facility PE for a facility place of service (the non-facility PE where the
facility PE is NA), and the GPCIs of the line's locality (all 1.000 when none is known).
"""

from .tables import CONTEXT_COLUMNS, clear_batch

TABLES = ["rvu", "gpci", "zip", "ptp", "mue_practitioner", "mue_outpatient_hospital"]


def _pick(table: str) -> str:
    return f"""
        coalesce(
            (select release_id from ref_releases r where r.table_name = '{table}'
               and d.dos between r.effective_start and r.effective_end
             order by r.effective_start desc, r.loaded_at desc limit 1),
            (select release_id from ref_releases r where r.table_name = '{table}' and r.effective_start <= d.dos
             order by r.effective_start desc limit 1),
            (select release_id from ref_releases r where r.table_name = '{table}'
             order by r.effective_start limit 1)) as {table}_release,
        exists(select 1 from ref_releases r where r.table_name = '{table}'
               and d.dos between r.effective_start and r.effective_end) as {table}_exact"""


DOS_RELEASES = f"""
create or replace temp table dos_releases as
select d.dos, {', '.join(_pick(t) for t in TABLES)}
from (select distinct date_of_service as dos from claim_lines where batch_id = ?) d
"""

# What a line's price depends on of the line itself, besides its units: each distinct combination is a price
# context of the batch (see assets/tables.py), priced once.
CONTEXT_KEYS = ["date_of_service", "hcpcs", "component", "facility", "locality", "service_zip", "claim_type"]
CONTEXTS = f"""
create or replace temp table context_keys as
select row_number() over ()::integer as context_id, *
from (select distinct {", ".join(CONTEXT_KEYS)} from claim_lines where batch_id = ?)
"""

# price_contexts keeps what the rules and the outputs read; the RVUs, GPCIs and conversion factor behind a fee
# stay in the reference tables, named by the context's releases. Storing a column costs about as much CPU as
# a lookup join over it, so the table holds nothing no one reads.
PRICE = f"""
insert into price_contexts (batch_id, context_id, {", ".join(CONTEXT_COLUMNS)})
with lr as (
    select ? as batch_id, l.context_id, l.hcpcs, l.component, l.facility, l.locality as given_locality,
           l.service_zip, l.claim_type, d.*,
           case when l.claim_type = 'institutional' then d.mue_outpatient_hospital_release
                else d.mue_practitioner_release end as mue_release,
           case when l.claim_type = 'institutional' then d.mue_outpatient_hospital_exact
                else d.mue_practitioner_exact end as mue_exact,
           case when l.claim_type = 'institutional' then 'outpatient_hospital' else 'practitioner' end
               as mue_service_type
    from context_keys l join dos_releases d on d.dos = l.date_of_service
),
located as (
    select lr.*,
           coalesce(g_given.locality_key, g_zip.locality_key, g_default.locality_key) as locality_key
    from lr
    left join ref_gpci g_given on g_given.release_id = lr.gpci_release and g_given.locality_key = lr.given_locality
    left join ref_zip z on z.release_id = lr.zip_release and z.zip = lr.service_zip
    left join ref_gpci g_zip on g_zip.release_id = lr.gpci_release and g_zip.mac = z.mac
                             and g_zip.locality = z.locality
    left join ref_gpci g_default on g_default.release_id = lr.gpci_release and g_default.locality_key = ?
),
rated as (
    select located.*,
           coalesce(rc.hcpcs, rb.hcpcs) is not null as in_fee_schedule,
           coalesce(rb.status, rc.status) as status,
           coalesce(rb.pctc, rc.pctc) as pctc,
           coalesce(rb.mult_proc, rc.mult_proc) as mult_proc,
           coalesce(rc.work_rvu, rb.work_rvu) as work_rvu,
           case when not located.facility then coalesce(rc.pe_nonfacility, rb.pe_nonfacility)
                when coalesce(rc.pe_facility_na, rb.pe_facility_na) then coalesce(rc.pe_nonfacility, rb.pe_nonfacility)
                else coalesce(rc.pe_facility, rb.pe_facility) end as pe_rvu,
           coalesce(rc.mp_rvu, rb.mp_rvu) as mp_rvu,
           coalesce(rc.conversion_factor, rb.conversion_factor) as conversion_factor,
           coalesce(g.work_gpci, 1.000)::decimal(6,3) as work_gpci,
           coalesce(g.pe_gpci, 1.000)::decimal(6,3) as pe_gpci,
           coalesce(g.mp_gpci, 1.000)::decimal(6,3) as mp_gpci,
           m.mue_value, m.mai
    from located
    left join ref_rvu rc on rc.release_id = located.rvu_release and rc.hcpcs = located.hcpcs
                         and rc.modifier = case located.component when 'global' then '' else located.component end
    left join ref_rvu rb on rb.release_id = located.rvu_release and rb.hcpcs = located.hcpcs and rb.modifier = ''
    left join ref_gpci g on g.release_id = located.gpci_release and g.locality_key = located.locality_key
    left join ref_mue m on m.release_id = located.mue_release and m.service_type = located.mue_service_type
                        and m.hcpcs = located.hcpcs
),
fees as (
    select rated.*,
           case when in_fee_schedule and status <> 'C' then
               round((work_rvu * work_gpci + pe_rvu * pe_gpci + mp_rvu * mp_gpci) * conversion_factor, 2)
           end::decimal(14,2) as unit_fee
    from rated
)
select batch_id, context_id, rvu_release, gpci_release, ptp_release, mue_release,
       case when rvu_exact and gpci_exact and ptp_exact and mue_exact then 'exact' else 'approximate' end,
       coalesce(locality_key, 'national'), in_fee_schedule, status, pctc, mult_proc, unit_fee, mue_value, mai
from fees
"""

# Each line: its context, and its expected allowed at its context's fee.
PRICED_KEYS = f"""
insert into priced_keys
select l.batch_id, l.line_id, k.context_id, round(c.unit_fee * l.units, 2)::decimal(14,2)
from claim_lines l
join context_keys k on {" and ".join(f"k.{key} is not distinct from l.{key}" for key in CONTEXT_KEYS)}
join (select * from price_contexts where batch_id = $batch) c on c.context_id = k.context_id
where l.batch_id = $batch
"""


def price_batch(con, batch_id: str, default_locality: str = "") -> dict[str, int]:
    clear_batch(con, "priced_keys", batch_id)
    clear_batch(con, "price_contexts", batch_id)
    con.execute(DOS_RELEASES, [batch_id])
    con.execute(CONTEXTS, [batch_id])
    con.execute(PRICE, [batch_id, default_locality.upper() or None])
    con.execute(PRICED_KEYS, {"batch": batch_id})
    priced, unpriced = con.execute(
        """select count(expected_allowed), count(*) - count(expected_allowed)
           from priced_lines where batch_id = ?""",
        [batch_id],
    ).fetchall()[0]
    return {"priced": priced, "unpriced": unpriced}
