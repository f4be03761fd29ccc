// A customer authorising an app's consent end to end, as the tests of every consent-based API need it: the
// app pushes the authorization request (PAR, PKCE S256, the consent in authorization_details), the
// customer signs in at the bank's page with the sandbox's one-time code, ticks accounts and approves, and
// the app redeems the code.
import * as client from 'openid-client';
import { location, TestBrowser } from './browser.ts';

export interface ConsentAuthorisation {
  readonly issuer: string;
  /** The app's client configuration (openid-client). */
  readonly config: client.Configuration;
  readonly redirectUri: string;
  readonly scope: string;
  /** The consent, by its type in authorization_details. */
  readonly type: string;
  readonly consentId: string;
  readonly username: string;
  readonly password: string;
  /** The accounts the customer ticks on the consent page. */
  readonly accounts: readonly string[];
}

/** The consent page as the customer saw it, and the access token the app redeemed the code for. */
export async function authoriseConsent(
  flow: ConsentAuthorisation,
): Promise<{ page: string; accessToken: string }> {
  const verifier = client.randomPKCECodeVerifier();
  const url = await client.buildAuthorizationUrlWithPAR(flow.config, {
    redirect_uri: flow.redirectUri,
    scope: flow.scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    authorization_details: JSON.stringify([{ type: flow.type, consentId: flow.consentId }]),
  });
  const browser = new TestBrowser(flow.issuer);
  const interaction = location(await browser.get(url));
  const signedIn = await browser.postForm(`${interaction}/login`, {
    username: flow.username,
    password: flow.password,
    code: '123456',
  });
  const consentUrl = location(await browser.get(location(signedIn)));
  const page = await (await browser.get(consentUrl)).text();
  // Several ticked boxes arrive as repeated `account` fields, which the page comma-joins: one comma-joined
  // field is the same request to it.
  const decided = await browser.postForm(`${consentUrl}/confirm`, {
    decision: 'approve',
    account: flow.accounts.join(','),
  });
  const callback = new URL(location(await browser.get(location(decided))));
  const tokens = await client.authorizationCodeGrant(flow.config, callback, { pkceCodeVerifier: verifier });
  return { page, accessToken: tokens.access_token };
}

/**
 * The customer follows a consent's own link to the bank (a Berlin Group `scaRedirect`), completed with what
 * only the app adds, its PKCE challenge; signs in, and approves (ticking `accounts`) or declines. The access
 * token the app redeemed the code for, or undefined when the customer declined.
 */
export async function followConsentLink(flow: {
  readonly issuer: string;
  readonly config: client.Configuration;
  readonly link: string;
  readonly username: string;
  readonly password: string;
  readonly accounts: readonly string[];
  readonly decision?: 'approve' | 'decline';
}): Promise<string | undefined> {
  const verifier = client.randomPKCECodeVerifier();
  const url = new URL(flow.link);
  url.searchParams.set('code_challenge', await client.calculatePKCECodeChallenge(verifier));
  url.searchParams.set('code_challenge_method', 'S256');
  const browser = new TestBrowser(flow.issuer);
  const interaction = location(await browser.get(url));
  const signedIn = await browser.postForm(`${interaction}/login`, {
    username: flow.username,
    password: flow.password,
    code: '123456',
  });
  const consentUrl = location(await browser.get(location(signedIn)));
  await browser.get(consentUrl);
  const decided = await browser.postForm(`${consentUrl}/confirm`, {
    decision: flow.decision ?? 'approve',
    account: flow.accounts.join(','),
  });
  const callback = new URL(location(await browser.get(location(decided))));
  if (callback.searchParams.has('error')) return undefined;
  const tokens = await client.authorizationCodeGrant(flow.config, callback, { pkceCodeVerifier: verifier });
  return tokens.access_token;
}
