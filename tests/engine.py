"""The engine tier: a batch judged by the same plain functions the Dagster assets call (read, validate, price,
judge, write), on a small DuckDB file, without the command line or Dagster. The rule corpora and the oracle
run this way; a few end-to-end tests keep the command line, the workbook and Dagster honest."""

import json
import os
from pathlib import Path

from assets import outputs
from assets.flow import BatchConfig, read_batch
from assets.pricing import price_batch
from assets.scrub import scrub_batch
from assets.validate import validate_batch
from pipelines.cli import batch_id_for
from pipelines.database import connect
from pipelines.settings import rvu_variant, work_floor_through
from pipelines.settings import standing_days as site_standing_days

from .helpers import Run, read_csv


def engine_scrub(files: list[Path], out_dir: Path, db: Path, *, history: bool = False, locality: str = "",
                 show_ids: bool = False, standing_days: int | None = None) -> Run:
    """Scrub `files` into `db` and write the outputs to `out_dir`, as `claimscrub scrub` does."""
    os.umask(0o077)
    from assets.readers import file_sha256

    hashes = [file_sha256(path) for path in files]
    config = BatchConfig(batch_id=batch_id_for(files, hashes), files=[str(p.resolve()) for p in files],
                         file_names=[p.name for p in files], file_hashes=hashes, default_locality=locality,
                         rvu_variant=rvu_variant(), work_floor_through=work_floor_through(),
                         out_dir=str(out_dir.resolve()), show_ids=show_ids, with_history=history)
    con = connect(str(db), 0)
    try:
        read_batch(con, config)
        for stage in (lambda: validate_batch(con, config.batch_id, lambda *a, **k: None),
                      lambda: price_batch(con, config.batch_id, locality, config.rvu_variant,
                                          config.work_floor_through),
                      lambda: scrub_batch(con, config.batch_id, with_history=history)):
            con.execute("begin transaction")
            stage()
            con.execute("commit")
        outputs.write_outputs(con, config.batch_id, out_dir, show_ids, lambda *a, **k: None,
                              standing_days=site_standing_days() if standing_days is None else standing_days)
    finally:
        con.close()
    run = Run(0, "", "", out_dir)
    run.flags = read_csv(out_dir / "flags.csv")
    run.lines = read_csv(out_dir / "lines.csv")
    run.quarantine = read_csv(out_dir / "quarantine.csv")
    run.summary = json.loads((out_dir / "summary.json").read_text())
    return run
