"""Pipelines: exam runs over a DAG of nodes, artifacts between them, caching, schedules, retries.

- `graph`: the DAG of an exam (edges, order, cycles) and trigger rules. Pure.
- `exam_runs`: launching an exam run and moving it on as its runs end.
- `artifacts`: what a run leaves, and a downstream node's inputs resolved at dispatch.
- `cache`: cache keys of cacheable nodes (spec, code, upstream artifacts, data watermarks).
- `schedules`: cron fire times (time zones, daylight saving), what is due, catch-up, policies. Pure.
- `schedule_store`: an exam's schedule in the store: set, view, list, delete, backfill.
- `scheduler`: the reconcile pass's tick that fires due schedules and starts queued exam runs.
"""
