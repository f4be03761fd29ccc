// How the HTTP tests call the bank in process: with an access token or the operator's, a signed-in
// customer's cookie, an Idempotency-Key and a JSON body; and how they read answers and problems.
import assert from 'node:assert/strict';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { App } from '../http/app.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface CallOptions {
  readonly token?: string;
  readonly cookie?: string;
  readonly key?: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** The JSON of an answer with `status`; fails the test, showing the body, on any other status. */
export function json<T>(response: LightMyRequestResponse, status = 200): T {
  assert.equal(response.statusCode, status, response.body);
  return response.json() as T;
}

/** A problem answer (RFC 9457) as [status, code]; fails the test when the answer is not one. */
export function problem(response: LightMyRequestResponse): [number, string] {
  assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8', response.body);
  return [response.statusCode, (response.json() as { code: string }).code];
}

/**
 * Calls into the app `appOf` gives (tests build it in `before`, after this is made), and signs customers
 * in at the bank's pages, keeping each one's session cookie.
 */
export function inProcess(appOf: () => App) {
  const cookies = new Map<string, string>();
  return {
    call(method: Method, url: string, options: CallOptions = {}) {
      const request: InjectOptions = {
        method,
        url,
        headers: {
          ...(options.token && { authorization: `Bearer ${options.token}` }),
          ...(options.cookie && { cookie: options.cookie }),
          ...(options.key && { 'idempotency-key': options.key }),
          ...options.headers,
        },
        ...(options.body !== undefined && { payload: options.body as object }),
      };
      return appOf().inject(request);
    },
    /** The customer's session cookie, signing in (with the sandbox's one-time code) the first time. */
    async signIn(username: string, password: string): Promise<string> {
      const known = cookies.get(username);
      if (known) return known;
      const response = await appOf().inject({
        method: 'POST',
        url: '/me/sign-in',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ username, password, code: '123456' }).toString(),
      });
      assert.equal(response.statusCode, 303, response.body);
      const cookie = String(response.headers['set-cookie']).split(';')[0] ?? '';
      cookies.set(username, cookie);
      return cookie;
    },
  };
}
