"""The data flow, stage by stage: ingest, validate, pricing, scrub, report."""
