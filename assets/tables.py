"""DuckDB tables of the claim data flow. Every table carries batch_id; a stage rewrites its batch
(delete, then insert) so that running it twice gives the same rows."""

from reference.loaders import ensure_schema as ensure_reference_schema

from .readers import parsed_rows_sql

# The export's text of the columns the quarantine quotes, beside each value parsed leniently (null when it
# does not parse): the readers parse every row once, and validation judges the parsed values.
RAW_COLUMNS = """
    batch_id varchar, file_index integer, source_file varchar, source_row bigint,
    claim_id varchar, line_number varchar, line_number_num double, patient_id varchar,
    date_of_service varchar, dos date, hcpcs varchar, units varchar, units_num double, modifiers varchar[],
    charge decimal(14,2), rendering_npi varchar, billing_npi varchar, place_of_service varchar,
    claim_type varchar, diagnoses varchar[], payer varchar, locality varchar, service_zip varchar"""

SCHEMA = f"""
create table if not exists batches (
    batch_id varchar primary key, started_at timestamp, files varchar);
create table if not exists batch_files (
    batch_id varchar, file_index integer, source_file varchar, path varchar, sha256 varchar,
    kind varchar, rows_read bigint);
create table if not exists raw_claim_rows ({RAW_COLUMNS});
create table if not exists claim_lines (
    batch_id varchar, line_id bigint, file_index integer, source_file varchar, source_row bigint,
    claim_id varchar, line_number integer, patient_id varchar, date_of_service date, hcpcs varchar,
    modifiers varchar[], modifier_text varchar, units decimal(12,3), charge decimal(14,2),
    rendering_npi varchar, billing_npi varchar, provider varchar, place_of_service varchar,
    claim_type varchar, diagnoses varchar[], payer varchar, locality varchar, service_zip varchar,
    component varchar, facility boolean);
create table if not exists claim_quarantine (
    batch_id varchar, file_index integer, source_file varchar, source_row bigint, claim_id varchar,
    line_number varchar, reasons varchar);
create table if not exists priced_lines (
    batch_id varchar, line_id bigint, rvu_release varchar, gpci_release varchar, ptp_release varchar,
    mue_release varchar, reference_match varchar, locality varchar, in_fee_schedule boolean,
    status varchar, pctc varchar, mult_proc varchar, unit_fee decimal(14,2), expected_allowed decimal(14,2),
    mue_value integer, mai integer);
create table if not exists line_flags (
    batch_id varchar, line_id bigint, rule_id varchar, category varchar, severity varchar, carc varchar,
    dollars_at_risk decimal(14,2), message varchar, partner_line_id bigint, ptp_column_1 varchar,
    ptp_column_2 varchar, ptp_modifier_indicator varchar, ptp_rationale varchar, partner_batch varchar);
create table if not exists run_history (
    batch_id varchar primary key, started_at timestamp, finished_at timestamp, files varchar,
    file_count integer, rows_read bigint, lines_scrubbed bigint, rows_quarantined bigint, findings bigint, deny_findings bigint,
    dollars_at_risk decimal(14,2));
alter table line_flags add column if not exists partner_batch varchar;
alter table priced_lines drop column if exists work_rvu;
alter table priced_lines drop column if exists pe_rvu;
alter table priced_lines drop column if exists mp_rvu;
alter table priced_lines drop column if exists pe_na_note;
alter table priced_lines drop column if exists conversion_factor;
alter table priced_lines drop column if exists work_gpci;
alter table priced_lines drop column if exists pe_gpci;
alter table priced_lines drop column if exists mp_gpci;
alter table priced_lines drop column if exists mue_rationale;
create table if not exists batch_order (batch_id varchar primary key, seq bigint);
"""


def ensure_schema(con) -> None:
    ensure_reference_schema(con)
    _parse_text_raw_rows(con)
    con.execute(SCHEMA)


def _parse_text_raw_rows(con) -> None:
    """A database whose raw_claim_rows still holds every cell as text gets its rows parsed, once."""
    text_layout = con.execute(
        """select count(*) from duckdb_columns()
           where database_name = current_database() and schema_name = 'main'
             and table_name = 'raw_claim_rows' and column_name = 'modifier_1'"""
    ).fetchall()[0][0]
    if not text_layout:
        return
    con.execute("begin transaction")
    con.execute("alter table raw_claim_rows rename to raw_claim_rows_text")
    con.execute(f"create table raw_claim_rows ({RAW_COLUMNS})")
    con.execute(f"""insert into raw_claim_rows
                    {parsed_rows_sql('select * from raw_claim_rows_text', 'batch_id, file_index, source_file')}""")
    con.execute("drop table raw_claim_rows_text")
    con.execute("commit")


def clear_batch(con, table: str, batch_id: str) -> None:
    con.execute(f"delete from {table} where batch_id = ?", [batch_id])
