/**
 * Server-side only: the export API client for the signed-in user. Never import this from a
 * client component; the token (or the shared secret) stays on the server.
 *
 * DURABLE_EXPORT_AUTH chooses how the user is identified to the export API:
 * - `forward` (default): the user's own identity-provider token, which the API verifies against
 *   the provider's JWKS (API_JWKS_URL, API_JWKS_ISSUER, API_JWKS_AUDIENCE on the API).
 * - `service`: a short-lived HS256 token this server mints for the user with the secret it
 *   shares with the API (DURABLE_EXPORT_JWT_SECRET = the API's API_JWT_SECRET).
 */

import { DurableExportClient, type ExportRequest } from "@durable-export/client";

import type { Session } from "./session";

const SERVICE_TOKEN_SECONDS = 300;

export function exportsClientFor(session: Session): DurableExportClient {
  const baseUrl = process.env.DURABLE_EXPORT_API_URL ?? "http://127.0.0.1:8000";
  if ((process.env.DURABLE_EXPORT_AUTH ?? "forward") === "service") {
    return new DurableExportClient({ baseUrl, token: () => mintServiceToken(session) });
  }
  if (!session.accessToken) {
    throw new Error("DURABLE_EXPORT_AUTH=forward needs the user's access token in the session");
  }
  return new DurableExportClient({ baseUrl, token: session.accessToken });
}

/** Base64url without padding, with what every runtime has (Node, edge, browsers). */
function base64url(data: ArrayBuffer | string): string {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** An HS256 JWT with the claims the API reads from service tokens: `sub`, `tenant`, `iat`, `exp`.
 * Web Crypto only: no JWT library needed for five minutes of validity. */
export async function mintServiceToken(session: Session): Promise<string> {
  const secret = process.env.DURABLE_EXPORT_JWT_SECRET;
  if (!secret) throw new Error("DURABLE_EXPORT_AUTH=service needs DURABLE_EXPORT_JWT_SECRET");
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = base64url(
    JSON.stringify({ sub: session.userId, tenant: session.tenant, iat: now, exp: now + SERVICE_TOKEN_SECONDS }),
  );
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${header}.${claims}`));
  return `${header}.${claims}.${base64url(signature)}`;
}

/** The reports this app offers. The browser names a report; the server builds the request, so
 * a user can never send a pipeline of their own. The API adds the tenant filter itself. */
export const REPORTS = {
  "failed-inspections": {
    collection: "inspections",
    pipeline: [{ $match: { result: "Fail" } }, { $sort: { date: -1 } }],
    columns: [
      { path: "certificate", header: "Certificate" },
      { path: "date", header: "Inspected at" },
      { path: "business.name", header: "Business" },
      { path: "business.address.city", header: "City" },
      { path: "score", header: "Score" },
    ],
    format: "csv",
    filename: "failed-inspections.csv",
  },
} satisfies Record<string, ExportRequest>;

export type ReportName = keyof typeof REPORTS;

export function isReportName(value: unknown): value is ReportName {
  return typeof value === "string" && Object.hasOwn(REPORTS, value);
}
