"""The status quo the product replaces, for scenario 4's contrast: a tiny FastAPI app whose
request handler runs the export itself, synchronously, and answers with the CSV.

`POST /exports/{id}` with an export request as body (the product's `ExportRequest`) reads the
whole pipeline with PyMongo (one cursor, the kindest case for this design), encodes it with the
product's CSV encoder and returns the file;
it is a plain `def` handler, so FastAPI runs it in its thread pool, as such code usually is.
`GET /exports/{id}` (status and rows encoded so far) and `/healthz` answer from memory. Run with
`python -m bench.sync_app --port N`; settings come from the environment like the product's.
"""

from __future__ import annotations

import argparse
import itertools

import uvicorn
from fastapi import FastAPI, Response
from pymongo import MongoClient

from domain.formats.encoding import EncodingSpec, freeze_columns, new_part_encoder
from domain.models import ExportRequest, Owner
from domain.pipeline.export_plan import plan_export
from domain.settings import Settings

OWNER = Owner(user_id="bench-sync", tenant="bench-tenant")


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="export inside the request (status quo)")
    client: MongoClient[dict[str, object]] = MongoClient(settings.mongodb_uri, tz_aware=True)
    status: dict[str, str] = {}
    rows_encoded: dict[str, int] = {}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/exports/{export_id}")
    async def progress(export_id: str) -> dict[str, object]:
        return {
            "export_id": export_id,
            "status": status.get(export_id, "UNKNOWN"),
            "rows": rows_encoded.get(export_id, 0),
        }

    @app.post("/exports/{export_id}")
    def export(export_id: str, request: ExportRequest) -> Response:
        status[export_id] = "RUNNING"
        plan = plan_export(request, OWNER, settings)
        source = client[settings.mongodb_database][request.collection]
        rows = iter(source.aggregate(plan.pipeline_for(None), batchSize=1000))
        sample = list(itertools.islice(rows, 100))
        encoder = new_part_encoder(
            EncodingSpec.of(request, hidden_fields=plan.hidden_fields),
            request.columns or freeze_columns(sample, plan.hidden_fields),
            first_part=True,
        )
        status[export_id] = "ENCODING"
        for count, row in enumerate(itertools.chain(sample, rows), 1):
            encoder.write(row)
            if count % 1000 == 0:
                rows_encoded[export_id] = count
        body = encoder.finish()
        status[export_id] = "COMPLETED"
        return Response(body, media_type="text/csv")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_app", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(Settings()), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
