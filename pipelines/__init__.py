"""Dagster wiring for claimscrub: definitions, resources, jobs and the command line front door."""
