/**
 * POST /api/durable/exports {"report": "failed-inspections"}: starts an export for the signed-in
 * user. The browser names one of the app's reports; the pipeline is built here. The same
 * Idempotency-Key (a double click, a retried request) gives the same export.
 */

import { exportsClientFor, isReportName, REPORTS } from "@/lib/durable-export";
import { errorResponse, unauthorized } from "@/lib/responses";
import { currentSession } from "@/lib/session";

export async function POST(request: Request): Promise<Response> {
  const session = await currentSession();
  if (!session) return unauthorized();
  const body: unknown = await request.json().catch(() => null);
  const report = typeof body === "object" && body !== null ? (body as { report?: unknown }).report : undefined;
  if (!isReportName(report)) {
    return Response.json(
      { error: { status: 422, code: "unknown_report", message: `reports: ${Object.keys(REPORTS).join(", ")}` } },
      { status: 422 },
    );
  }
  const idempotencyKey = request.headers.get("idempotency-key") ?? undefined;
  try {
    const started = await exportsClientFor(session).start(REPORTS[report], { idempotencyKey });
    return Response.json(
      { export_id: started.export_id, status: started.status, strategy: started.strategy },
      { status: 202 },
    );
  } catch (error) {
    return errorResponse(error);
  }
}
