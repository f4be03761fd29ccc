import type { FastifyReply, FastifyRequest } from 'fastify';
import type Provider from 'oidc-provider';
import { ACCOUNTS_PAGE_MAX, type Accounts } from '../accounts/service.ts';
import type { Mode } from '../config.ts';
import { CONSENT_VALIDITY_MAX_MS, type Consents } from '../consents/service.ts';
import type { Consent } from '../consents/store.ts';
import { type App, containsNul, nulRefused, scoped } from '../http/app.ts';
import { asIssuerRequest } from '../oauth/provider.ts';
import { consentPage, errorPage, loginPage } from './pages.ts';
import { type CustomerAuth, SANDBOX_ONE_TIME_CODE } from './service.ts';

export const FORM_BODY_LIMIT_BYTES = 4096;
// No scripts, no framing, nothing loaded from elsewhere: the pages are plain forms.
export const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export type Form = Record<string, string | undefined>;

/**
 * The interaction endpoints oidc-provider sends the customer to (`interactions.url`): sign-in with a
 * password and a second factor, then consent. The provider's interaction cookie ties each POST to the
 * browser that started the flow, so a form posted from another site finds no interaction.
 */
export function registerInteractionRoutes(
  app: App,
  provider: Provider,
  services: { auth: CustomerAuth; consents: Consents; accounts: Accounts },
  mode: Mode,
): void {
  const { auth, consents, accounts } = services;
  // The customer's accounts a consent may cover: active ones, in the payment's (or mandate's) currency.
  const choosable = async (customerId: string, requested: readonly Consent[]) => {
    const all = (await accounts.list(customerId, undefined, undefined, ACCOUNTS_PAGE_MAX)).filter(
      (account) => account.status === 'active',
    );
    const currency = requested
      .map((consent) => {
        const details = consent.details as { instructedAmount?: { currency?: string }; currency?: string };
        return (
          details.instructedAmount?.currency ?? (consent.type === 'mandate' ? details.currency : undefined)
        );
      })
      .find(Boolean);
    return currency ? all.filter((account) => account.currency === currency) : all;
  };
  /** The consents an authorization request names (RFC 9396), as validated by the provider at PAR. */
  const requestedConsents = async (params: Record<string, unknown>): Promise<Consent[] | undefined> => {
    const details = params.authorization_details
      ? (JSON.parse(String(params.authorization_details)) as { consentId?: string }[])
      : [];
    const found = await Promise.all(details.map((detail) => consents.find(String(detail.consentId))));
    return found.every((consent) => consent?.status === 'awaiting_authorisation')
      ? (found as Consent[])
      : undefined;
  };
  scoped(app, (pages) => {
    pages.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT_BYTES },
      (_request, body, done) => {
        // Repeated fields (several accounts ticked) keep every value, comma-joined: ids never hold commas.
        const form: Form = {};
        for (const [name, value] of new URLSearchParams(String(body))) {
          form[name] = form[name] === undefined ? value : `${form[name]},${value}`;
        }
        if (containsNul(form)) return done(nulRefused(), undefined);
        done(null, form);
      },
    );
    // The interaction pages hand their requests to the provider too: as requests to the issuer.
    pages.addHook('onRequest', (request, _reply, done) => {
      asIssuerRequest(request.raw, provider.issuer);
      done();
    });
    const html = (reply: FastifyReply, status: number, body: string) =>
      reply.code(status).headers(PAGE_HEADERS).send(body);
    const details = async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        return await provider.interactionDetails(request.raw, reply.raw);
      } catch {
        return undefined;
      }
    };
    const appName = async (clientId: unknown) =>
      (await provider.Client.find(String(clientId)))?.clientName ?? 'an app';
    const expired = (reply: FastifyReply) =>
      html(
        reply,
        400,
        errorPage(
          'This sign-in has expired or was opened in another browser. Go back to the app and start again.',
        ),
      );

    pages.get('/interaction/:uid', async (request, reply) => {
      const interaction = await details(request, reply);
      if (!interaction) return expired(reply);
      const name = await appName(interaction.params.client_id);
      if (interaction.prompt.name === 'login') {
        return html(
          reply,
          200,
          loginPage({
            action: `/interaction/${interaction.uid}/login`,
            heading: `Sign in to continue to ${name}`,
            ...sandboxHint(mode),
          }),
        );
      }
      const requested = await requestedConsents(interaction.params);
      if (!requested) return expired(reply);
      const until = requested
        .map((consent) => consent.expiresAt)
        .sort((a, b) => a.getTime() - b.getTime())[0];
      const customerId = String(interaction.session?.accountId ?? '');
      return html(
        reply,
        200,
        consentPage({
          uid: interaction.uid,
          appName: name,
          scopes: requestedScopes(interaction),
          consents: requested,
          accounts: requested.length > 0 ? await choosable(customerId, requested) : [],
          validity: until ? `until ${until.toISOString().slice(0, 10)}` : 'as long as you allow it',
        }),
      );
    });

    pages.post('/interaction/:uid/login', async (request, reply) => {
      const interaction = await details(request, reply);
      if (interaction?.prompt.name !== 'login') return expired(reply);
      const form = (request.body ?? {}) as Form;
      const outcome = await auth.signIn({
        username: String(form.username ?? ''),
        password: String(form.password ?? ''),
        oneTimeCode: String(form.code ?? ''),
        clientId: String(interaction.params.client_id ?? ''),
        remoteAddress: request.ip,
      });
      if (!outcome.ok) {
        const error =
          outcome.code === 'locked'
            ? 'Too many failed attempts. Sign-in is locked for a while; try again later.'
            : 'The username, password or one-time code is not right.';
        const name = await appName(interaction.params.client_id);
        return html(
          reply,
          outcome.code === 'locked' ? 429 : 401,
          loginPage({
            action: `/interaction/${interaction.uid}/login`,
            heading: `Sign in to continue to ${name}`,
            error,
            ...sandboxHint(mode),
          }),
        );
      }
      reply.hijack();
      await provider.interactionFinished(
        request.raw,
        reply.raw,
        { login: { accountId: outcome.customerId, amr: outcome.amr, acr: 'urn:apibank:sca' } },
        { mergeWithLastSubmission: false },
      );
    });

    pages.post('/interaction/:uid/confirm', async (request, reply) => {
      const interaction = await details(request, reply);
      if (interaction?.prompt.name !== 'consent') return expired(reply);
      const form = (request.body ?? {}) as Form;
      const requested = await requestedConsents(interaction.params);
      const customerId = String(interaction.session?.accountId ?? '');
      if (!requested) return expired(reply);
      if (form.decision !== 'approve') {
        for (const consent of requested) await consents.reject(consent.id, customerId);
        reply.hijack();
        await provider.interactionFinished(
          request.raw,
          reply.raw,
          { error: 'access_denied', error_description: 'the customer declined' },
          { mergeWithLastSubmission: false },
        );
        return;
      }
      // The accounts ticked must be the customer's own and choosable: a forged form names nothing else.
      const allowed = new Set((await choosable(customerId, requested)).map((account) => account.id));
      const chosen = [
        ...new Set(
          String(form.account ?? '')
            .split(',')
            .filter(Boolean),
        ),
      ];
      const single = requested.some((consent) => consent.type !== 'account_information');
      if (
        requested.length > 0 &&
        (chosen.length === 0 || chosen.some((id) => !allowed.has(id)) || (single && chosen.length !== 1))
      ) {
        return html(reply, 400, errorPage('Choose the account this applies to, then allow it again.'));
      }
      const { session, params, prompt } = interaction;
      const grant = interaction.grantId
        ? await provider.Grant.find(interaction.grantId)
        : new provider.Grant({ accountId: session?.accountId, clientId: String(params.client_id) });
      if (!grant) return expired(reply);
      const missing = prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(resource, scopes.join(' '));
      }
      // The plain `accounts` scope, with no account-information consent beside it, reads every account the
      // customer has: it becomes a consent of its own, over those accounts, so the customer finds it among
      // their consents and can revoke it like any other, and every call checks it.
      const readsAll =
        String(params.scope ?? '')
          .split(' ')
          .includes('accounts') && !requested.some((consent) => consent.type === 'account_information');
      const implicit = readsAll
        ? await consents.create(String(params.client_id), {
            type: 'account_information',
            details: { permissions: ['details', 'balances', 'transactions'] },
            expiresAt: new Date(Date.now() + CONSENT_VALIDITY_MAX_MS - 60_000),
          })
        : undefined;
      if (implicit && !implicit.ok) return expired(reply);
      const granted = implicit?.ok ? [...requested, implicit.consent] : requested;
      for (const consent of granted) grant.addRar({ type: consent.type, consentId: consent.id });
      const grantId = await grant.save();
      for (const consent of requested) {
        // Lost a race with expiry or revocation: nothing is granted.
        if (!(await consents.authorise(consent.id, customerId, grantId, chosen))) return expired(reply);
      }
      if (implicit?.ok) {
        const every = (await choosable(customerId, [])).map((account) => account.id);
        if (!(await consents.authorise(implicit.consent.id, customerId, grantId, every)))
          return expired(reply);
      }
      reply.hijack();
      await provider.interactionFinished(
        request.raw,
        reply.raw,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
    });
  });
}

export function sandboxHint(mode: Mode): { sandboxCode?: string } {
  return mode === 'sandbox' ? { sandboxCode: SANDBOX_ONE_TIME_CODE } : {};
}

function requestedScopes(interaction: { params: Record<string, unknown> }): string[] {
  return String(interaction.params.scope ?? '')
    .split(' ')
    .filter(Boolean);
}
