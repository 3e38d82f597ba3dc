"""`make demo`: the stack's smoke path (an export end to end arrives with the workflow issue).

Checks that every local server answers, writes and reads back an object through the S3 server,
and runs an aggregation on each MongoDB-compatible engine. Exits non-zero if any check fails.
"""

from __future__ import annotations

import os
import sys
import uuid

from pymongo import MongoClient

from activities.s3_client import make_s3_client
from devstack import services
from domain.settings import Settings


def main() -> int:
    for key, value in services.env_values().items():
        os.environ.setdefault(key, value)
    settings = Settings()
    failures = 0
    for name, service in services.SERVICES.items():
        ok = service.answers()
        failures += not ok
        print(f"{'ok ' if ok else 'FAIL'} {name} on 127.0.0.1:{service.port}")

    s3 = make_s3_client(settings)
    key = f"demo/{uuid.uuid4().hex}.csv"
    body = b"state,population\r\nNY,19453561\r\n"
    s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=body)
    echoed = s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
    s3.delete_object(Bucket=settings.s3_bucket, Key=key)
    failures += echoed != body
    print(
        f"{'ok ' if echoed == body else 'FAIL'} S3 round trip through s3://{settings.s3_bucket}/{key}"
    )

    for label, uri in (
        ("ferretdb", settings.mongodb_uri),
        ("mongo-java-server", os.environ["SECOND_MONGODB_URI"]),
    ):
        client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
        coll = client[settings.mongodb_database][f"demo_{uuid.uuid4().hex[:8]}"]
        coll.insert_many([{"state": s, "pop": p} for s, p in [("NY", 3), ("NY", 4), ("CA", 5)]])
        rows = list(
            coll.aggregate(
                [{"$group": {"_id": "$state", "pop": {"$sum": "$pop"}}}, {"$sort": {"_id": 1}}]
            )
        )
        coll.drop()
        ok = rows == [{"_id": "CA", "pop": 5}, {"_id": "NY", "pop": 7}]
        failures += not ok
        print(f"{'ok ' if ok else 'FAIL'} aggregation on {label}: {rows}")

    print(
        "\nThe local stack works. (The full demo, an export from request to downloaded file, "
        "arrives with the workflow and API issues.)"
        if not failures
        else f"\n{failures} check(s) failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
