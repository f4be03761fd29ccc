// The customer's side of consents: a page at the bank (`/me/consents`) and the same as JSON
// (`/v1/me/consents`), both behind a session the customer starts by signing in with password and one-time
// code. The session cookie is SameSite=Strict, so another site cannot post a revocation in their name.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Apps } from '../apps/service.ts';
import type { Mode } from '../config.ts';
import { errorPage, loginPage, myConsentsPage } from '../customer-auth/pages.ts';
import { FORM_BODY_LIMIT_BYTES, type Form, PAGE_HEADERS, sandboxHint } from '../customer-auth/routes.ts';
import { CUSTOMER_SESSION_TTL_MS, type CustomerAuth } from '../customer-auth/service.ts';
import { type App, containsNul, nulRefused, scoped } from '../http/app.ts';
import { checks } from '../http/openapi.ts';
import { Problem } from '../http/problems.ts';
import { NoContent } from '../http/schemas.ts';
import { ConsentView, consentJson } from './routes.ts';
import { CONSENTS_PAGE_MAX, type Consents } from './service.ts';

const SESSION_COOKIE = 'apibank_customer';
const Id = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' });

function sessionToken(request: FastifyRequest): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === SESSION_COOKIE) return value.join('=');
  }
  return undefined;
}

/**
 * An onRequest hook admitting a customer signed in at the bank's pages; sets `request.customerId` (whom the
 * session acts for) and `request.customerLoginId` (which of the customer's users it is).
 */
export function customerSession(auth: CustomerAuth) {
  return checks('customerSession', async (request: FastifyRequest) => {
    const token = sessionToken(request);
    const user = token ? await auth.sessionUser(token) : undefined;
    if (!user) throw new Problem('unauthorized', 'sign in at /me/consents first');
    request.customerId = user.customerId;
    request.customerLoginId = user.loginId;
  });
}

export function registerCustomerConsentRoutes(
  app: App,
  services: { auth: CustomerAuth; consents: Consents; apps: Apps },
  mode: Mode,
): void {
  const { auth, consents, apps } = services;
  const cookie = (value: string, maxAgeS: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${mode === 'production' ? '; Secure' : ''}`;
  const customerOf = async (request: FastifyRequest) => {
    const token = sessionToken(request);
    return token ? auth.sessionCustomer(token) : undefined;
  };
  const html = (reply: FastifyReply, status: number, body: string) =>
    reply.code(status).headers(PAGE_HEADERS).send(body);
  const signInPage = (error?: string) =>
    loginPage({
      action: '/me/sign-in',
      heading: 'Sign in to review the apps you allowed',
      ...(error ? { error } : {}),
      ...sandboxHint(mode),
    });
  const withAppNames = async (customerId: string) => {
    const list = await consents.listForCustomer(customerId, undefined, CONSENTS_PAGE_MAX);
    return Promise.all(
      list.map(async (consent) => ({
        ...consent,
        appName: (await apps.find(consent.clientId))?.name ?? 'A deleted app',
      })),
    );
  };

  scoped(app, (pages) => {
    pages.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT_BYTES },
      (_request, body, done) => {
        const form = Object.fromEntries(new URLSearchParams(String(body)));
        if (containsNul(form)) return done(nulRefused(), undefined);
        done(null, form);
      },
    );

    pages.get('/me/consents', async (request, reply) => {
      const customerId = await customerOf(request);
      if (!customerId) return html(reply, 200, signInPage());
      return html(reply, 200, myConsentsPage(await withAppNames(customerId)));
    });

    pages.post('/me/sign-in', async (request, reply) => {
      const form = (request.body ?? {}) as Form;
      const outcome = await auth.signIn({
        username: String(form.username ?? ''),
        password: String(form.password ?? ''),
        oneTimeCode: String(form.code ?? ''),
        clientId: null,
        remoteAddress: request.ip,
      });
      if (!outcome.ok) {
        const locked = outcome.code === 'locked';
        const message = locked
          ? 'Too many failed attempts. Try again later.'
          : 'The username, password or one-time code is not right.';
        return html(reply, locked ? 429 : 401, signInPage(message));
      }
      const session = await auth.startSession(outcome.customerId, outcome.loginId);
      return reply
        .code(303)
        .header('set-cookie', cookie(session.token, CUSTOMER_SESSION_TTL_MS / 1000))
        .header('location', '/me/consents')
        .send();
    });

    pages.post(
      '/me/consents/:id/revoke',
      { schema: { params: Type.Object({ id: Id }) } },
      async (request, reply) => {
        const customerId = await customerOf(request);
        if (!customerId) return html(reply, 401, errorPage('Your session has ended. Sign in again.'));
        const consent = await consents.getForCustomer(customerId, request.params.id);
        if (consent) await consents.revoke(consent);
        return reply.code(303).header('location', '/me/consents').send();
      },
    );

    pages.post('/me/sign-out', async (request, reply) => {
      const token = sessionToken(request);
      if (token) await auth.endSession(token);
      return reply.code(303).header('set-cookie', cookie('', 0)).header('location', '/me/consents').send();
    });
  });

  scoped(app, (api) => {
    api.addHook('onRequest', customerSession(auth));
    const customer = (request: FastifyRequest) => request.customerId as string;

    const ConsentList = Type.Object(
      { consents: Type.Array(ConsentView) },
      { description: "The customer's consents" },
    );
    api.get('/v1/me/consents', { schema: { response: { 200: ConsentList } } }, async (request) => ({
      consents: (await consents.listForCustomer(customer(request), undefined, CONSENTS_PAGE_MAX)).map(
        consentJson,
      ),
    }));

    api.delete(
      '/v1/me/consents/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 204: NoContent } } },
      async (request, reply) => {
        const consent = await consents.getForCustomer(customer(request), request.params.id);
        if (!consent) throw new Problem('not_found', 'no consent with this id');
        if (consent.status !== 'revoked' && !(await consents.revoke(consent)))
          throw new Problem('consent_not_active');
        return reply.code(204).send();
      },
    );
  });
}

declare module 'fastify' {
  interface FastifyRequest {
    customerId?: string;
    customerLoginId?: string;
  }
}
