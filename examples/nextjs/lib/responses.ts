import { ExportApiError } from "@durable-export/client";

/** The export API's error passed on to the browser with its status and code (its message names
 * what was refused); anything else is a 502 without internals. */
export function errorResponse(error: unknown): Response {
  if (error instanceof ExportApiError) {
    const headers = error.retryAfterSeconds ? { "Retry-After": String(error.retryAfterSeconds) } : undefined;
    return Response.json(
      { error: { status: error.status, code: error.code, message: error.message } },
      { status: error.status, headers },
    );
  }
  console.error("export API call failed", error);
  return Response.json(
    { error: { status: 502, code: "export_api_unreachable", message: "the export service did not answer" } },
    { status: 502 },
  );
}

export function unauthorized(): Response {
  return Response.json(
    { error: { status: 401, code: "unauthorized", message: "sign in to export" } },
    { status: 401 },
  );
}
