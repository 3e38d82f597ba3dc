"""Write RELIABILITY.md from the figures the reliability suite emitted.

`make reliability` runs the suite with RELIABILITY_FULL=1 (it writes
`.devstack/reliability/results-full.json`), then this script. The figures all come from that
JSON; the findings at the end are the suite's maintainers' notes on what the figures mean.

    python -m scripts.reliability_report [--results PATH] [--out PATH] [--allow-partial]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from devstack.paths import REPO_ROOT, state_dir

RESULTS = state_dir() / "reliability" / "results-full.json"
CI_RESULTS = state_dir() / "reliability" / "results-ci.json"
OUT = REPO_ROOT / "RELIABILITY.md"

COMMANDS = """\
```bash
make reliability   # the full run; writes this file. It runs:
#   .venv/bin/python -m devstack.toxiproxy install        # toxiproxy-server v2.12.0, cached
#   RELIABILITY_FULL=1 scripts/run-tests -m reliability tests/reliability
#   .venv/bin/python -m scripts.reliability_report        # this file, from the run's JSON
make test          # the whole suite, with the CI-sized part of this one (full-only tests skip)
scripts/run-tests -m reliability tests/reliability   # the CI-sized part alone
```"""

FINDINGS = """\
## Findings

* **Fixed: a lost CreateMultipartUpload answer left an orphaned upload.** When S3 created the
  upload but the answer was lost on the way back, boto3 retried the call and S3 opened a second
  upload for the same key; the export used the second and completed, and the first stayed open
  (until the janitor's 24 h cut-off). Found by `s3_responses_lost`: before the fix, 7 uploads
  were left open by 8 byte-identical exports. `ExportActivities.start_upload` now keeps the
  key's oldest upload and aborts any other, so every attempt, concurrent ones too, settles on
  the same upload. The scenario now leaves none.
* **Fixed: a server cursor dropped mid-part failed the whole export.** In a full run,
  `everything_at_once` ended one export FAILED with "the database refused the export query
  (code 43): cursor id … not found". FerretDB drops a cursor when the connection that opened
  it closes, and PyMongo sends the next getMore on whichever pooled connection is free; the
  resulting `CursorNotFound` was classified as a permanent refusal. Re-reading the part from
  its chunk cursor gives the same rows (MongoDB drops cursors too: idle timeout, failover), so
  `activities.errors.classify_mongo` now leaves it to Temporal's retry.
  `test_a_cursor_lost_with_its_connection_is_retried_not_fatal` reproduces the error on
  FerretDB every time (`maxIdleTimeMS=1` closes the cursor's connection between two batches)
  and checks it stays retryable.
* **Fixed: a long non-ASCII filename was accepted but could never be stored.** `filename` is
  limited to 200 characters, but the object key percent-encodes it: 196 × `é` + `.csv` became a
  1,180-byte key segment, over the 255 bytes versitygw's POSIX backend allows (AWS: 1,024 for
  the whole key). The API answered 202, parts uploaded, then CompleteMultipartUpload failed with
  `InternalError`, retried without end: the export stayed RUNNING, held a running-export slot
  and kept its upload open (this suite's strict xfail). `ExportRequest` now refuses such a
  filename, and a report_id too long to name the default file, with 422 (corpus file 200).
* **Fixed: an S3 error that never clears kept an export running.** Parts and S3 calls were
  retried with no attempt limit, so a server error that is really permanent kept the export
  RUNNING, holding one of its owner's slots. Every activity now has `ACTIVITY_MAX_ATTEMPTS` and
  every export `EXPORT_DEADLINE_SECONDS` (see "Failure paths": `permanent_s3_500`, `deadline`).
* **Fixed: a lossy network to S3 stalled exports at completion.** In `s3_responses_lost` (half
  the S3 answers lost) one export of eight was still unfinished after 420 s, its
  `verify_and_complete` at attempt 12: boto3's `standard` retry mode has a retry quota per
  client that every thread of a worker shares; it ran dry, after which no request was retried,
  and an attempt of four requests rarely had all four answered. The clients now use botocore's
  `legacy` mode (5 retries, no quota): 33 % of requests failed before, 2 % after
  (`python -m bench.s3_retry_modes`). The scenario now ends in 43 s.
* **Fixed: dropped MongoDB connections stalled exports before and inside their parts.** In
  `mongo_connections_closed_mid_cursor` one export of three was unfinished after 420 s: the
  parallel planner's key count (one query of seconds on FerretDB) never finished between two
  cuts, and a part whose cursor died restarted from its first row. Now `auto` reads the
  collection's document count instead of counting when that settles it, a count that fails
  three times leaves the export serial, and a part reopens its query after the last row read
  (`tests/reliability/test_read_resumes.py`). The scenario's three exports ended identical.
* **Silent connections stall but do not corrupt.** A MongoDB or S3 connection that stops
  passing data without being closed stalls its part for as long as the silence lasts (PyMongo
  has no `socketTimeoutMS` here; S3 reads time out after botocore's 60 s); once the connection
  closes, the part is retried from its cursor and the object is identical. A silence that never
  ends is bounded for MongoDB only by TCP keepalive (about 2 to 4 minutes on a real network),
  since the part's heartbeat comes from a side thread. Setting `socketTimeoutMS` a little above
  `MONGODB_MAX_TIME_MS` would bound it.
* **Fixed: a worker killed during a short activity cost up to 2 minutes.** `prepare_export`,
  `start_upload` and `complete_upload` had a 2-minute start-to-close timeout and no heartbeat;
  every activity now heartbeats (timeout 10 s), so a lost attempt is retried within seconds.
* **The running-export limit briefly counts a finished export.** An export this API process
  started in the last 10 s counts as running even once it has finished (the visibility grace),
  so a user who starts and finishes an export quickly can be refused (429) for up to 10 s while
  under the limit; the 429 message then overstates the running count by one.
* **Forged tenant fields are accepted by design, and harmless.** `$match`, `$set`, `$lookup`,
  `$unionWith` and `$graphLookup` naming another tenant are accepted (the corpus checks with
  `explain` that the caller's tenant filter still comes first, at every depth); a tenant or
  owner in the request body is refused (422). Bodies the JSON parser cannot read (invalid UTF-8,
  nesting deeper than it recurses) get FastAPI's 400 "There was an error parsing the body". A
  `$binary` whose base64 holds non-alphabet characters is decoded leniently by bson.json_util
  (they are skipped) rather than refused.
"""


def _scenario_rows(faults: dict[str, Any]) -> list[str]:
    rows = [
        "| scenario | faults injected | exports | SIGKILLs each export lived through | identical "
        "| missing / duplicated rows | open uploads left | seconds | worker RSS peak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in faults.items():
        exports = s["exports"]
        kills = sorted(e.get("kills_during", 0) for e in exports)
        lived = "-" if not kills or not kills[-1] else f"{kills[0]} to {kills[-1]}"
        rows.append(
            f"| `{name}` | {s['faults_total']} | {len(exports)} | {lived} "
            f"| {sum(e['identical'] for e in exports)} "
            f"| {sum(e['missing_rows'] for e in exports)} / "
            f"{sum(e['duplicated_rows'] for e in exports)} "
            f"| {sum(e['orphaned_uploads'] for e in exports)} | {s['seconds']} "
            f"| {s['peak_worker_rss_mib']} MiB |"
        )
    return rows


def _scenario_details(faults: dict[str, Any]) -> list[str]:
    lines = []
    for name, s in faults.items():
        kinds = ", ".join(f"{kind} × {n}" for kind, n in sorted(s["faults"].items()))
        lines.append(f"* `{name}` (seed `{s['seed']}`): {s['what']}. Injected: {kinds}.")
        if s.get("retried_errors"):
            retried = ", ".join(f"{k} × {n}" for k, n in sorted(s["retried_errors"].items()))
            lines.append(f"  Failed attempts in the workers' log, each retried: {retried}.")
        if s.get("in_flight_at_kill"):
            flight = ", ".join(f"{k} × {n}" for k, n in sorted(s["in_flight_at_kill"].items()))
            lines.append(f"  In flight at a kill: {flight}.")
        for e in s["exports"]:
            if e["status"] != "COMPLETED" or not e["identical"] or e["orphaned_uploads"]:
                lines.append(
                    f"  NOT SURVIVED: {e['export_id']} {e['status']}, identical={e['identical']}, "
                    f"open uploads {e['orphaned_uploads']}, error: {e['error']}"
                )
    return lines


def _failure_path_rows(paths: dict[str, Any]) -> list[str]:
    rows = [
        "| failure | what happened | ended | identical | uploads left | error shown |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, path in paths.items():
        identical = {True: "yes", False: "NO", None: "-"}[path.get("identical")]
        error = (path.get("error") or "").replace("|", "\\|")
        rows.append(
            f"| {name} | {path['what']} | {path['status']} | {identical} | "
            f"{path['uploads_left']} | {error[:160] or '-'} |"
        )
    return rows


def _failures(doc: dict[str, Any]) -> list[str]:
    bad = {k: v for k, v in doc["tests"].items() if v not in ("passed", "skipped")}
    if not bad:
        return ["Every test passed."]
    return [f"* `{test}`: **{outcome}**" for test, outcome in sorted(bad.items())]


def render(doc: dict[str, Any], ci: dict[str, Any] | None) -> str:
    sections = doc["sections"]
    faults: dict[str, Any] = sections.get("faults", {})
    exports = [e for s in faults.values() for e in s["exports"]]
    kinds: Counter[str] = Counter()
    for s in faults.values():
        kinds.update(s["faults"])
    hostile = sections.get("hostile_input", {})
    prop = hostile.get("property_run", {})
    names = hostile.get("accepted_filenames", [])
    iso = sections.get("isolation", {})
    expiry = iso.get("presigned_expiry", {})
    load = sections.get("load", {})
    before, after = hostile.get("workflows_before", {}), hostile.get("workflows_after", {})
    control = hostile.get("control_request_seen", {})
    ci_line = "The CI-sized part has not been run in full on this checkout yet."
    if ci and set(doc["tests"]) <= set(ci["tests"]):  # every test ran or skipped: a whole run
        ran = sum(1 for outcome in ci["tests"].values() if outcome != "skipped")
        ci_line = (
            f"The CI-sized part (in `make test`) last ran {ran} tests in {ci.get('test_seconds', '?')} s "
            f"({ci['started_at']}, commit `{ci['git_commit']}`)."
        )
    out = [
        "# Reliability and security",
        "",
        "What the reliability suite (`tests/reliability/`) measured in its last full run against "
        "the real local stack: real faults between the worker and S3 / MongoDB (toxiproxy), "
        "killed workers, a restarted Temporal server, hostile requests, cross-user probes and "
        "a burst of load. Written by `scripts/reliability_report.py`; do not edit by hand.",
        "",
        f"Last full run: {doc['started_at']}, commit `{doc['git_commit']}`, {doc['machine']}, "
        f"Python {doc['python']}; {len(doc['tests'])} tests in {doc.get('test_seconds', '?')} s "
        f"({doc['wall_seconds']} s wall). {ci_line}",
        "",
        COMMANDS,
        "",
        "## Figures",
        "",
        "| | |",
        "| --- | --- |",
        f"| faults injected | {sum(kinds.values())} in {len(faults)} scenarios |",
        f"| exports run under faults | {len(exports)} |",
        f"| exports byte-identical to their reference | {sum(e['identical'] for e in exports)} "
        f"of {len(exports)} |",
        f"| multipart uploads left open (target 0) | "
        f"{sum(e['orphaned_uploads'] for e in exports)} |",
        f"| duplicated or missing rows (target 0) | "
        f"{sum(e['duplicated_rows'] for e in exports)} duplicated, "
        f"{sum(e['missing_rows'] for e in exports)} missing |",
        f"| hostile requests (corpus files) | {hostile.get('corpus_files')}: "
        f"{hostile.get('corpus_refused_requests')} refused with the expected 4xx and message, "
        f"{hostile.get('corpus_explain_requests')} `explain` checks of the tenant filter, "
        f"{len(names)} accepted filenames exported; mismatches: "
        f"{len(hostile.get('mismatches', {}))} |",
        f"| workflows started by refused requests (target 0) | task queue {before.get('task_queue')}"
        f" → {after.get('task_queue')}, owner {before.get('owner')} → {after.get('owner')} "
        f"(a valid control request was counted as {control.get('task_queue')} / "
        f"{control.get('owner')}) |",
        f"| random pipelines through validation and planning | {prop.get('examples')}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(prop.get("outcomes", {}).items()))
        + "; any other exception fails the run |",
        f"| cross-user and cross-tenant probes | {iso.get('probes')} by "
        f"{len(iso.get('intruders', []))} intruders; leaks: {len(iso.get('leaks', []))} |",
        f"| presigned link of {expiry.get('expiry_seconds')} s | before expiry "
        f"{expiry.get('before')}, after {expiry.get('after')} "
        f"(checked {expiry.get('checked_after_seconds')} s after issue) |",
        f"| load: {load.get('users')} users, {load.get('submitted')} exports at once, limit "
        f"{load.get('limit_per_user')} | {load.get('accepted')} accepted, "
        f"{load.get('refused_429')} × 429 ({load.get('refused_429_with_retry_after')} with "
        f"Retry-After); at most {load.get('max_running_per_user')} running per user; "
        f"{load.get('identical')} of {load.get('accepted')} identical; open uploads "
        f"{load.get('orphaned_uploads')}; all done in {load.get('all_done_seconds')} s |",
        f"| worker memory under load | {load.get('worker_rss_idle_mib')} MiB idle, "
        f"{load.get('worker_rss_peak_mib')} MiB peak (bound {load.get('worker_rss_limit_mib')} "
        "MiB) |",
        f"| /healthz during the burst | {load.get('healthz_requests')} requests, failures "
        f"{load.get('healthz_failures')}; p50 {load.get('healthz_p50_ms')} ms, p99 "
        f"{load.get('healthz_p99_ms')} ms, max {load.get('healthz_max_ms')} ms |",
        "",
        "## Fault scenarios",
        "",
        "Every export is checked against the same pipeline run once, unchunked, and encoded in "
        'one go; a row is a line of the object. "Open uploads left" counts multipart uploads '
        "under the export's own prefix after it ended.",
        "",
        *_scenario_rows(faults),
        "",
        *_scenario_details(faults),
        "",
        "Faults by kind over all scenarios: "
        + "; ".join(f"{kind} × {n}" for kind, n in sorted(kinds.items()))
        + ".",
        "",
        "## Failure paths",
        "",
        "Each export meets one failure at the worst moment (`tests/reliability/test_failure_paths.py`"
        ", an S3 fault proxy for request-level faults); it must end, and end as the owner expects.",
        "",
        *_failure_path_rows(sections.get("failure_paths", {})),
        "",
        "## Hostile input",
        "",
        "Corpus files by category: "
        + ", ".join(f"{k} {v}" for k, v in hostile.get("categories", {}).items())
        + ". Answers by status: "
        + ", ".join(f"{k}: {v}" for k, v in hostile.get("statuses", {}).items())
        + ".",
        "",
        "Accepted filenames (object key and the Content-Disposition S3 served):",
        "",
        "| filename | key segment bytes | outcome |",
        "| --- | --- | --- |",
        *[
            f"| `{n['filename']!r}` | {n.get('key_segment_bytes', '-')} | "
            + (
                "sane key and header, identical object"
                if not n["problems"]
                else "; ".join(n["problems"])
            )
            + (" (known defect: strict xfail)" if n.get("known_defect") else "")
            + " |"
            for n in names
        ],
        "",
        "## Test outcomes",
        "",
        *_failures(doc),
        "",
        FINDINGS,
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--allow-partial", action="store_true", help="accept results of a run that was not full"
    )
    args = parser.parse_args(argv)
    try:
        doc = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        print(f"reliability_report: cannot read {args.results}: {exc}", file=sys.stderr)
        return 1
    if not doc.get("full") and not args.allow_partial:
        print(f"reliability_report: {args.results} is not from a full run", file=sys.stderr)
        return 1
    ci = json.loads(CI_RESULTS.read_text()) if CI_RESULTS.exists() else None
    args.out.write_text(render(doc, ci))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
