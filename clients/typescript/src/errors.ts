/** Errors the client throws. The API's errors always have one shape; `ExportApiError` carries it. */

import type { components } from "./schema.js";

export type ErrorDetail = components["schemas"]["ErrorDetail"];

/** An answer of the API other than the expected success: its status, stable code and message. */
export class ExportApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  /** Seconds to wait before trying again (`Retry-After`), on 429 and 503. */
  readonly retryAfterSeconds: number | undefined;

  constructor(detail: ErrorDetail, retryAfterSeconds?: number) {
    super(`${detail.status} ${detail.code}: ${detail.message}`);
    this.name = "ExportApiError";
    this.status = detail.status;
    this.code = detail.code;
    this.details = detail.details ?? undefined;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** The error of a response that is not OK, from its JSON body when it has the API's shape. */
  static async from(response: Response): Promise<ExportApiError> {
    const retry = Number(response.headers.get("retry-after") ?? Number.NaN);
    const retryAfter = Number.isFinite(retry) ? retry : undefined;
    const text = await response.text();
    try {
      const body = JSON.parse(text) as { error?: ErrorDetail };
      if (body.error && typeof body.error.code === "string") {
        return new ExportApiError(body.error, retryAfter);
      }
    } catch {
      // not JSON: a proxy or load balancer answered
    }
    return new ExportApiError(
      { status: response.status, code: "http_error", message: text.slice(0, 500) || response.statusText },
      retryAfter,
    );
  }
}
