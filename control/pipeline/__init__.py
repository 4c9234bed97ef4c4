"""Pipelines: exam runs over a DAG of nodes, artifacts between them, caching, schedules, retries.

- `graph`: the DAG of an exam (edges, order, cycles) and trigger rules. Pure.
- `exam_runs`: launching an exam run and moving it on as its runs end.
- `artifacts`: what a run leaves, and a downstream node's inputs resolved at dispatch.
- `cache`: cache keys of cacheable nodes (spec, code, upstream artifacts, data watermarks).
- `schedules`: cron schedules and backfills.
"""
