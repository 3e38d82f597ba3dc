/**
 * The signed-in user, as your auth library knows them. Replace the body with yours:
 *
 * - Auth.js:  `const session = await auth()`; the access token from the `jwt` callback
 * - Clerk:    `const { userId, orgId, getToken } = await auth()`; `await getToken()`
 * - Auth0:    `const { token } = await auth0.getAccessToken()` (audience = the export API)
 * - Cognito / Keycloak: the access token your OIDC middleware keeps in the session
 *
 * This stand-in reads three cookies so the example runs without an identity provider.
 */

import { cookies } from "next/headers";

export interface Session {
  /** The user id the export API sees (the token's `sub`, or API_JWKS_USER_CLAIM). */
  userId: string;
  /** The user's organisation: exports only ever read this tenant's documents. */
  tenant: string;
  /** The identity provider's access token for the export API, when forwarding it. */
  accessToken?: string;
}

export async function currentSession(): Promise<Session | null> {
  const jar = await cookies();
  const userId = jar.get("demo_user")?.value;
  const tenant = jar.get("demo_tenant")?.value;
  if (!userId || !tenant) return null;
  return { userId, tenant, accessToken: jar.get("demo_access_token")?.value };
}
