#!/usr/bin/env python3
"""Fills a run store that `flow` created with COUNT finished runs, written straight into
SQLite (the dashboard benchmark's data; Python standard library only).

The store must already exist with the real schema: `flow keys create --store STORE` (or
any `flow` command on it) creates it, and one `flow serve` of dashboard.flow on it stores
the program and its deployment. The rows copy the column list of the store's own `runs`
and `events` tables (`PRAGMA table_info`), so a column added later with a default or NULL
is left to it, and a NOT NULL column this script does not know stops it with a message.

What it writes:
  - COUNT runs of the workflows in WORKFLOWS below, created over the last DAYS days up to
    a minute ago (evenly spread, with jitter), ~96.5% completed, ~3% failed, ~0.5%
    cancelled; the trigger follows the workflow (NULL, 'webhook' or 'schedule');
    finished_at = created_at + a random duration; `program` is the hash of the program
    the deployment stored, so a run's page can draw its workflow's graph;
  - a journal (run_started, step_started/step_succeeded per step, the end; a failed run's
    last step fails) for one run in EVENTS_EVERY, and for the newest RECENT runs so each
    workflow's page has statistics over its recent runs.

Usage: generate.py STORE [COUNT] [--days 30] [--events-every 1000] [--recent 1000]
Prints what it wrote and how long it took on stderr, and on stdout one JSON line:
{"runs": N, "events": N, "seconds": S, "program": HASH, "run_with_events": RUN_ID, ...}
"""

import argparse
import json
import random
import sqlite3
import sys
import time

# name: (weight, trigger, steps, typical duration in ms, output, input)
WORKFLOWS = {
    "orders": (45, None, ["fetched", "checked", "stored"], 900, "1", '{"day":"today"}'),
    "invoices": (30, "webhook", ["parsed", "booked"], 250, '"booked"', "{}"),
    "nightly_report": (10, "schedule", ["gathered", "summed", "sent"], 4000, "1", "{}"),
    "sync_crm": (15, None, ["listed", "pushed"], 1500, "2", '{"since":""}'),
}
WEBHOOK_EVENT = '{"invoice":"INV-1","amount":120}'
FAILURES = [
    ("communication", "connection refused (127.0.0.1:9)", None),
    ("timeout", "no answer within 30s", None),
    ("validation", "the answer's field `total` is missing", None),
    ("communication", "HTTP 503 from the service", 503),
]
KNOWN_RUN_COLUMNS = {
    "id", "run_id", "workflow", "program", "parent", "parent_step", "owner_as", "priority",
    "status", "input", "output", "error", "created_at", "finished_at", "executor", "wake_at",
    "dedupe", "trigger", "event", "actor",
}
KNOWN_EVENT_COLUMNS = {"run", "seq", "at", "kind", "step", "attempt", "data"}


def columns(db, table, known):
    """The table's columns (in order) this script fills; refuses unknown NOT NULL ones."""
    cols = []
    for _cid, name, _type, notnull, default, _pk in db.execute(f"PRAGMA table_info({table})"):
        if name in known:
            cols.append(name)
        elif notnull and default is None:
            sys.exit(f"generate.py: `{table}.{name}` is NOT NULL without a default; teach this script its values")
    if not cols:
        sys.exit(f"generate.py: the store has no `{table}` table; create it with `flow` first")
    return cols


def deployed_program(db):
    """The hash of the program the active deployment holds (the one dashboard.flow made)."""
    try:
        row = db.execute("SELECT programs, workflows FROM deployments WHERE active = 1").fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is None:
        sys.exit("generate.py: the store has no active deployment; run `flow serve dashboard.flow --store STORE` once first")
    hashes, names = json.loads(row[0]), set(json.loads(row[1]))
    missing = sorted(set(WORKFLOWS) - names)
    if missing:
        sys.exit(f"generate.py: the deployment lacks workflows {missing}; serve scripts/bench-dashboard/dashboard.flow")
    for h in hashes:
        if db.execute("SELECT 1 FROM programs WHERE hash = ?", (h,)).fetchone():
            return h
    sys.exit("generate.py: the deployment's program is not in the programs table")


def error_json(kind, message, step, status, attempts=1):
    e = {"kind": kind, "message": message, "step": step, "attempts": attempts}
    if status is not None:
        e["status"] = status
    return json.dumps(e, separators=(",", ":"))


def journal(key, run, wf):
    """The events of one generated run: (run, seq, at, kind, step, attempt, data)."""
    _w, _t, steps, _d, output, _i = WORKFLOWS[wf]
    created, finished, status, error = run["created_at"], run["finished_at"], run["status"], run["error"]
    out = [(key, 0, created, "run_started", None, None, '{"executor":"bench-gone"}')]
    span = max(finished - created, len(steps) * 2)
    last = len(steps) if status == "completed" else run["_step"] + 1
    at = created
    for i, step in enumerate(steps[:last]):
        start = created + span * i // len(steps)
        end = created + span * (i + 1) // len(steps)
        at = max(at, start)
        out.append((key, len(out), at, "step_started", step, 1, None))
        at = max(at, end)
        if status == "failed" and i == last - 1:
            data = json.dumps({"error": json.loads(error), "final": True}, separators=(",", ":"))
            out.append((key, len(out), at, "step_failed", step, 1, data))
        elif status == "cancelled" and i == last - 1:
            pass  # cancelled while this step ran
        else:
            out.append((key, len(out), at, "step_succeeded", step, 1, '{"printed":true}'))
    end_kind, end_data = {
        "completed": ("run_completed", output),
        "failed": ("run_failed", error),
        "cancelled": ("run_cancelled", ""),
    }[status]
    out.append((key, len(out), finished, end_kind, None, None, end_data))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store")
    p.add_argument("count", nargs="?", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--events-every", type=int, default=1000)
    p.add_argument("--recent", type=int, default=1000, help="the newest N runs get a journal too")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--now", type=int, default=None, help="Unix ms the newest run is a minute before (default: now)")
    a = p.parse_args()

    t0 = time.monotonic()
    rng = random.Random(a.seed)
    db = sqlite3.connect(a.store, isolation_level=None)
    # The server must be stopped: the load leaves write-ahead logging for its duration.
    db.execute("PRAGMA busy_timeout = 5000")
    run_cols = columns(db, "runs", KNOWN_RUN_COLUMNS)
    event_cols = columns(db, "events", KNOWN_EVENT_COLUMNS)
    program = deployed_program(db)
    first_key = (db.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]) + 1
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.execute("PRAGMA journal_mode = MEMORY")  # a rollback still works; nothing is written twice
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")  # 256 MiB of page cache for the index builds

    # The indexes on `runs` (all but the automatic one of `run_id UNIQUE`) are dropped for
    # the load and made again from their own SQL afterwards: one sort each instead of a
    # million inserts (9 s instead of 10.5 s for 1,000,000 runs on the 2-core machine).
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' AND sql IS NOT NULL"
    ).fetchall()

    names = list(WORKFLOWS)
    weights = [WORKFLOWS[w][0] for w in names]
    now = a.now if a.now is not None else int(time.time() * 1000)
    end = now - 60_000
    start = end - a.days * 86_400_000
    step = (end - start) / a.count
    picks = rng.choices(names, weights=weights, k=a.count)
    draws = [rng.random() for _ in range(a.count)]

    placeholders = ",".join("?" for _ in run_cols)
    insert_run = f"INSERT INTO runs ({','.join(run_cols)}) VALUES ({placeholders})"
    insert_event = f"INSERT INTO events ({','.join(event_cols)}) VALUES ({','.join('?' for _ in event_cols)})"
    journaled = []  # (key, row dict, workflow) of runs that get events
    counts = {"completed": 0, "failed": 0, "cancelled": 0}

    db.execute("BEGIN")
    try:
        for name, _sql in indexes:
            db.execute(f'DROP INDEX "{name}"')

        def rows():
            expo, rand = rng.expovariate, rng.random
            for i in range(a.count):
                key = first_key + i
                wf = picks[i]
                _w, trigger, steps, typical, output, input_ = WORKFLOWS[wf]
                created = int(start + i * step + draws[i] * step)
                r = rand()
                if r < 0.03:
                    status = "failed"
                elif r < 0.035:
                    status = "cancelled"
                else:
                    status = "completed"
                counts[status] += 1
                finished = created + 3 + int(expo(1.0 / typical))
                error = None
                at_step = i % len(steps)  # where a failed or cancelled run stopped
                if status == "failed":
                    kind, message, http = FAILURES[i % len(FAILURES)]
                    error = error_json(kind, message, steps[at_step], http)
                elif status == "cancelled":
                    error = error_json("runtime", "cancelled", "", None, attempts=0)
                run = {
                    "id": key,
                    # Time-ordered like the engine's ids (`r` + 11 hex digits of ms + 9 of a
                    # tail); the tail is a bijection of the index, so ids never collide.
                    "run_id": f"r{created:011x}{(i * 0x9E3779B1) & 0xFFFFFFFFF:09x}",
                    "workflow": wf,
                    "program": program,
                    "parent": None,
                    "parent_step": None,
                    "owner_as": "bench",
                    "priority": 1,
                    "status": status,
                    "input": input_,
                    "output": output if status == "completed" else None,
                    "error": error,
                    "created_at": created,
                    "finished_at": finished,
                    "executor": None,
                    "wake_at": None,
                    "dedupe": None,
                    "trigger": trigger,
                    "event": WEBHOOK_EVENT if trigger == "webhook" else None,
                    "actor": None,
                    "_step": at_step,
                }
                if i % a.events_every == a.events_every // 2 or i >= a.count - a.recent:
                    journaled.append((key, run, wf))
                yield tuple(run[c] for c in run_cols)

        db.executemany(insert_run, rows())
        t_runs = time.monotonic()
        for _name, sql in indexes:
            db.execute(sql)
        t_indexes = time.monotonic()
        events = []
        for key, run, wf in journaled:
            for e in journal(key, run, wf):
                d = dict(zip(("run", "seq", "at", "kind", "step", "attempt", "data"), e))
                events.append(tuple(d[c] for c in event_cols))
        db.executemany(insert_event, events)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    finally:
        db.execute(f"PRAGMA journal_mode = {mode}")
        db.close()
    seconds = time.monotonic() - t0

    # A run with a journal for the run page: the newest completed one of the first workflow.
    pick = next((run for _k, run, wf in reversed(journaled) if wf == names[0] and run["status"] == "completed"), None)
    failed = next((run for _k, run, _wf in reversed(journaled) if run["status"] == "failed"), None)
    print(
        f"generated {a.count:,} runs ({counts['completed']:,} completed, {counts['failed']:,} failed, "
        f"{counts['cancelled']:,} cancelled) and {len(events):,} events for {len(journaled):,} of them "
        f"in {seconds:.1f} s (runs {t_runs - t0:.1f} s, indexes {t_indexes - t_runs:.1f} s)",
        file=sys.stderr,
    )
    print(json.dumps({
        "runs": a.count,
        "events": len(events),
        "journaled_runs": len(journaled),
        "seconds": round(seconds, 2),
        "program": program,
        "workflows": names,
        "run_with_events": pick["run_id"] if pick else None,
        "failed_run_with_events": failed["run_id"] if failed else None,
    }))


if __name__ == "__main__":
    main()
