// The sign-in and consent pages in a real browser (Debian's Chromium) with JavaScript switched off: a
// customer gets from the app's authorization link back to the app using labelled fields and buttons only.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { type Browser, chromium } from 'playwright-core';
import { type Db, openDb } from '../db/db.ts';
import { migrate } from '../db/migrate.ts';
import type { BuiltApp } from '../main.ts';
import { createCustomer, newClientApp, registerApp, signUpDeveloper, startBank } from '../testing/bank.ts';

const CHROMIUM = '/usr/bin/chromium';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'browser test password';

describe('sign-in and consent pages in Chromium', {
  skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (.ci/run installs it)`,
}, () => {
  let db: Db;
  let built: BuiltApp;
  let browser: Browser;
  let issuer: string;
  let config: client.Configuration;
  let developer: Record<string, string>;

  before(async () => {
    db = await openDb({});
    await migrate(db);
    ({ built, issuer } = await startBank(db, { adminToken: 'browser-test-operator-token-0123456789' }));
    developer = await signUpDeveloper(built.app, 'browser-dev@example.com', PASSWORD);
    const created = await registerApp(built.app, developer, {
      name: 'Budget Buddy',
      redirectUris: [REDIRECT],
      scopes: ['openid', 'profile'],
      tokenEndpointAuthMethod: 'client_secret_basic',
    });
    config = await client.discovery(
      new URL(issuer),
      created.id,
      undefined,
      client.ClientSecretBasic(created.clientSecret),
      {
        execute: [client.allowInsecureRequests],
      },
    );
    await built.customerAuth?.createLogin({
      username: 'erin',
      password: PASSWORD,
      displayName: 'Erin',
      email: 'erin@example.com',
      emailVerified: true,
    });
    // The flags the machine's notes give for a root, offline, headless Chromium.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  after(async () => {
    await browser?.close();
    await built?.app.close();
    await db?.close();
  });

  it('takes a customer from the authorization link to the app with forms alone', async () => {
    const verifier = client.randomPKCECodeVerifier();
    const url = await client.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    // Nothing listens at the app's callback: answer it here and keep the URL the bank sent the browser to.
    let callback: URL | undefined;
    await page.route('http://localhost:3000/**', async (route) => {
      callback = new URL(route.request().url());
      await route.fulfill({ contentType: 'text/plain', body: 'back at the app' });
    });

    await page.goto(url.href);
    assert.equal(await page.title(), 'Sign in · apibank');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await page.getByLabel('Username').fill('erin');
    await page.getByLabel('Password').fill('not it');
    await page.getByLabel('One-time code').fill('123456');
    await page.getByRole('button', { name: 'Sign in' }).click();
    assert.match((await page.getByRole('alert').textContent()) ?? '', /not right/);

    await page.getByLabel('Username').fill('erin');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('One-time code').fill('123456');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Budget Buddy asks to:' }).waitFor();
    assert.match((await page.getByRole('list').textContent()) ?? '', /See your name/);
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(/localhost:3000/);

    assert.ok(callback, 'the browser was sent back to the app');
    assert.equal(callback.searchParams.get('iss'), issuer);
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier });
    assert.equal(tokens.claims()?.name, 'Erin');
    await context.close();
  });

  it("shows a mandate's merchant, limits, currency and expiry, and charges the account the customer picks", async () => {
    const frank = await createCustomer(built, {
      username: 'frank',
      password: PASSWORD,
      accounts: [
        { product: 'current', currency: 'EUR' },
        { product: 'savings', currency: 'EUR' },
        { product: 'current', currency: 'GBP' },
      ],
    });
    const cabCo = await createCustomer(built, { username: 'cabco', password: PASSWORD, legalName: 'Cab Co' });
    const merchantIban = (await built.accounts?.find(cabCo.accountIds[0] ?? ''))?.iban ?? '';
    const app = await newClientApp({ built, issuer }, developer, {
      name: 'Cab Co Rides',
      scopes: ['openid', 'payments'],
      redirectUri: REDIRECT,
    });
    const expiresAt = new Date(Date.now() + 60 * 86_400_000).toISOString();
    const proposed = await built.app.inject({
      method: 'POST',
      url: '/v1/mandates',
      headers: { authorization: `Bearer ${app.appToken}` },
      payload: {
        currency: 'EUR',
        maxPerCharge: '25.00',
        periodicLimits: [
          { period: 'week', maxAmount: '60.00' },
          { period: 'month', maxAmount: '150.00' },
        ],
        creditor: { name: 'Cab Co', iban: merchantIban },
        expiresAt,
      },
    });
    assert.equal(proposed.statusCode, 201, proposed.body);
    const mandateId = proposed.json().id as string;
    const verifier = client.randomPKCECodeVerifier();
    const url = await client.buildAuthorizationUrlWithPAR(app.config, {
      redirect_uri: REDIRECT,
      scope: 'openid payments',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      authorization_details: JSON.stringify([{ type: 'mandate', consentId: mandateId }]),
    });
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    let callback: URL | undefined;
    await page.route('http://localhost:3000/**', async (route) => {
      callback = new URL(route.request().url());
      await route.fulfill({ contentType: 'text/plain', body: 'back at the app' });
    });

    await page.goto(url.href);
    await page.getByLabel('Username').fill('frank');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('One-time code').fill('123456');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Cab Co Rides asks to:' }).waitFor();
    // The terms, each its own item, in the words the customer reads.
    const terms = await page.getByRole('listitem').allTextContents();
    for (const term of [
      `paid to Cab Co (${merchantIban})`,
      'at most 25.00 EUR a payment',
      'at most 60.00 EUR a week (Monday to Sunday, UTC)',
      'at most 150.00 EUR a calendar month (UTC)',
      `until ${expiresAt.slice(0, 10)}`,
    ]) {
      assert.ok(terms.includes(term), `${term} in ${JSON.stringify(terms)}`);
    }
    // One account to charge, in the mandate's currency: the GBP account is not offered.
    const choices = page.getByRole('radio');
    assert.equal(await choices.count(), 2);
    assert.equal(await page.getByRole('group', { name: 'Pay from' }).getByText('GBP').count(), 0);
    await page.getByRole('radio', { name: /Savings account/ }).check();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(/localhost:3000/);
    assert.ok(callback, 'the browser was sent back to the app');
    await client.authorizationCodeGrant(app.config, callback, { pkceCodeVerifier: verifier });
    await context.close();

    const mandate = await built.app.inject({
      url: `/v1/mandates/${mandateId}`,
      headers: { authorization: `Bearer ${app.appToken}` },
    });
    assert.deepEqual(
      [mandate.json().status, mandate.json().debtorAccountId],
      ['authorised', frank.accountIds[1]],
    );
  });
});
