/**
 * GET /api/durable/exports/{id}: the export's progress, for the browser's progress bar. The
 * path mirrors the export API's `GET /exports/{id}`, so the client component polls it with the
 * same `DurableExportClient` (`baseUrl: "/api/durable"`, no token). The export API answers 404
 * for an export of another user: the token here is the signed-in user's.
 */

import { exportsClientFor } from "@/lib/durable-export";
import { errorResponse, unauthorized } from "@/lib/responses";
import { currentSession } from "@/lib/session";

export async function GET(
  request: Request,
  context: { params: Promise<{ id: string }> },
): Promise<Response> {
  const session = await currentSession();
  if (!session) return unauthorized();
  const { id } = await context.params;
  try {
    const view = await exportsClientFor(session).status(id, { signal: request.signal });
    return Response.json(view, { headers: { "Cache-Control": "no-store" } });
  } catch (error) {
    return errorResponse(error);
  }
}
