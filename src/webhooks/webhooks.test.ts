import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { registerAppRoutes } from '../apps/routes.ts';
import { Apps } from '../apps/service.ts';
import { registerDeveloperRoutes } from '../developers/routes.ts';
import { Developers } from '../developers/service.ts';
import { emit, eventsAbout } from '../events/outbox.ts';
import { type App, createHttpServer, scoped } from '../http/app.ts';
import { addressProblem } from '../outbound.ts';
import type { Pii } from '../pii/pii.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';
import { registerWebhookRoutes } from './routes.ts';
import {
  eventTypeMatches,
  RETRY_CEILINGS_MS,
  type Resolve,
  retryDelayMs,
  WebhookDispatcher,
  Webhooks,
} from './service.ts';
import { sign } from './signing.ts';
import { claimDueDeliveries } from './store.ts';

const HOUR_MS = 60 * 60 * 1000;

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

type Answer = number | 'hang';

/** A webhook receiver on 127.0.0.1 that answers each request as `answer(n)` says (n counts from 1). */
async function receiver(answer: (n: number) => Answer = () => 200) {
  const received: Received[] = [];
  const hanging = new Set<ServerResponse>();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      const reply = answer(received.length);
      if (reply === 'hang') {
        hanging.add(response);
        return;
      }
      response.statusCode = reply;
      response.end();
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    types: () => received.map((r) => (JSON.parse(r.body) as { type: string }).type).sort(),
    async close() {
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise((closed) => server.close(closed));
    },
  };
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((tick) => setTimeout(tick, 10));
  }
}

for (const database of testDatabases()) {
  describe(`webhooks on ${database.name}`, () => {
    let db: TestDb;
    let pii: Pii;
    let app: App;
    let webhooks: Webhooks;
    let dispatcher: WebhookDispatcher;
    // The webhooks' clock; each test starts at the real time (receivers check timestamps) and moves it on.
    let clockMs = Date.now();
    const now = () => new Date(clockMs);
    const advance = (ms: number) => {
      clockMs += ms;
    };
    const closers: (() => Promise<void>)[] = [];
    let emailCounter = 0;

    before(async () => {
      db = await database.open();
      pii = await testPii(db);
      // Only the parts webhooks stand on: developers, their apps, and the webhook routes.
      const developers = new Developers({ db });
      const apps = new Apps({ db, pii, mode: 'sandbox' });
      app = createHttpServer();
      scoped(app, (scope) => registerDeveloperRoutes(scope, developers));
      registerAppRoutes(app, apps, developers);
      webhooks = new Webhooks({ db, pii, mode: 'sandbox', apps, now });
      scoped(app, (scope) => registerWebhookRoutes(scope, webhooks, developers));
      await app.ready();
      dispatcher = new WebhookDispatcher({ db, pii, mode: 'sandbox', now, timeoutMs: 1000 });
    });
    after(async () => {
      await app.close();
      await db.close();
    });
    beforeEach(() => {
      clockMs = Date.now();
    });
    afterEach(async () => {
      await dispatcher.idle();
      for (const close of closers.splice(0)) await close();
      // Each test starts with no endpoints and nothing left to dispatch.
      await db.query('delete from webhook_endpoints');
      await db.query('update outbox_events set delivered_at = $1 where delivered_at is null', [now()]);
    });

    const listen = async (answer?: (n: number) => Answer) => {
      const created = await receiver(answer);
      closers.push(created.close);
      return created;
    };
    const round = async (on = dispatcher) => {
      const started = await on.dispatchOnce();
      await on.idle();
      return started;
    };
    const developer = async () => {
      const email = `hooks${++emailCounter}@example.com`;
      const password = 'a developer password';
      await app.inject({ method: 'POST', url: '/v1/developers', payload: { name: 'Dev', email, password } });
      const session = await app.inject({
        method: 'POST',
        url: '/v1/developers/sessions',
        payload: { email, password },
      });
      return { authorization: `Bearer ${session.json().token}` };
    };
    const newApp = async (headers: Record<string, string>) => {
      const created = await app.inject({
        method: 'POST',
        url: '/v1/apps',
        headers,
        payload: {
          name: 'Shop',
          redirectUris: ['https://shop.example/cb'],
          scopes: ['payments'],
          tokenEndpointAuthMethod: 'client_secret_basic',
        },
      });
      assert.equal(created.statusCode, 201, created.body);
      return created.json().id as string;
    };
    const endpoint = async (
      headers: Record<string, string>,
      appId: string,
      payload: { url: string; eventTypes: string[]; description?: string },
    ) => {
      const created = await app.inject({
        method: 'POST',
        url: `/v1/apps/${appId}/webhooks`,
        headers,
        payload,
      });
      assert.equal(created.statusCode, 201, created.body);
      return created.json() as { id: string; secret: string; url: string };
    };
    const event = (type: string, clientId: string | null, extra: Record<string, unknown> = {}) =>
      emit(db, now(), { type, subjectId: `subject-${type}`, payload: { clientId, ...extra } });
    const deliveriesOf = async (
      headers: Record<string, string>,
      appId: string,
      endpointId: string,
      query = '',
    ) => {
      const response = await app.inject({
        url: `/v1/apps/${appId}/webhooks/${endpointId}/deliveries${query}`,
        headers,
      });
      assert.equal(response.statusCode, 200, response.body);
      return response.json() as {
        deliveries: {
          id: string;
          status: string;
          attempts: number;
          error: string | null;
          responseStatus: number | null;
          nextAttemptAt: string | null;
          webhookId: string;
          eventType: string;
          replayOf: string | null;
          durationMs: number | null;
        }[];
        nextCursor: string | null;
      };
    };

    it('signs each delivery so that the standardwebhooks package verifies it, and seals the secret at rest', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const hooks = await listen();
      const created = await endpoint(dev, appId, { url: hooks.url, eventTypes: ['payment.*'] });
      assert.match(created.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      const [stored] = await db.query<{ secret_enc: string }>(
        'select secret_enc from webhook_endpoints where id = $1',
        [created.id],
      );
      assert.ok(stored?.secret_enc.startsWith('v1.') && !stored.secret_enc.includes(created.secret.slice(6)));
      const shown = await app.inject({ url: `/v1/apps/${appId}/webhooks/${created.id}`, headers: dev });
      assert.equal(shown.json().secret, undefined, 'the secret is shown once');

      await event('payment.settled', appId, { paymentId: 'p-1', status: 'settled' });
      assert.equal(await round(), 1);
      assert.equal(hooks.received.length, 1);
      const [delivery] = hooks.received as [Received];
      assert.equal(delivery.headers['content-type'], 'application/json');
      const verified = new Webhook(created.secret).verify(
        delivery.body,
        delivery.headers as Record<string, string>,
      );
      assert.deepEqual(verified, {
        type: 'payment.settled',
        timestamp: now().toISOString(),
        data: { clientId: appId, paymentId: 'p-1', status: 'settled' },
      });
      assert.match(String(delivery.headers['webhook-id']), /^evt_\d+$/);
      assert.equal(String(delivery.headers['webhook-signature']).split(' ').length, 1);
      assert.throws(() =>
        new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(
          delivery.body,
          delivery.headers as Record<string, string>,
        ),
      );

      const log = await deliveriesOf(dev, appId, created.id);
      assert.equal(log.deliveries.length, 1);
      assert.deepEqual(
        {
          status: log.deliveries[0]?.status,
          attempts: log.deliveries[0]?.attempts,
          responseStatus: log.deliveries[0]?.responseStatus,
          webhookId: log.deliveries[0]?.webhookId,
        },
        { status: 'delivered', attempts: 1, responseStatus: 200, webhookId: delivery.headers['webhook-id'] },
      );
      assert.equal(typeof log.deliveries[0]?.durationMs, 'number');
      assert.equal(await round(), 0, 'delivered once');
    });

    it('sends each endpoint the event types it asked for, exact or by prefix wildcard', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const exact = await listen();
      const prefix = await listen();
      const mixed = await listen();
      const everything = await listen();
      await endpoint(dev, appId, { url: exact.url, eventTypes: ['payment.settled'] });
      await endpoint(dev, appId, { url: prefix.url, eventTypes: ['payment.*'] });
      await endpoint(dev, appId, { url: mixed.url, eventTypes: ['onboarding.*', 'account.opened'] });
      await endpoint(dev, appId, { url: everything.url, eventTypes: ['*'] });
      for (const type of [
        'payment.settled',
        'payment.rejected',
        'onboarding.application.submitted',
        'account.opened',
      ])
        await event(type, appId);
      // No app named: nobody's.
      await event('customer.created', null);
      await round();
      assert.deepEqual(exact.types(), ['payment.settled']);
      assert.deepEqual(prefix.types(), ['payment.rejected', 'payment.settled']);
      assert.deepEqual(mixed.types(), ['account.opened', 'onboarding.application.submitted']);
      assert.deepEqual(everything.types(), [
        'account.opened',
        'onboarding.application.submitted',
        'payment.rejected',
        'payment.settled',
      ]);
      assert.ok(eventTypeMatches(['payment.*'], 'payment.settled.late'));
      assert.ok(!eventTypeMatches(['payment.*'], 'payments.settled'));
      assert.ok(!eventTypeMatches(['payment.*'], 'payment'));

      const bad = await app.inject({
        method: 'POST',
        url: `/v1/apps/${appId}/webhooks`,
        headers: dev,
        payload: { url: exact.url, eventTypes: ['payment.*.settled'] },
      });
      assert.deepEqual([bad.statusCode, bad.json().code], [400, 'validation_failed']);
    });

    it("never sends an app another app's events", async () => {
      const devA = await developer();
      const devB = await developer();
      const appA = await newApp(devA);
      const appB = await newApp(devB);
      const hooksA = await listen();
      const hooksB = await listen();
      await endpoint(devA, appA, { url: hooksA.url, eventTypes: ['*'] });
      await endpoint(devB, appB, { url: hooksB.url, eventTypes: ['*'] });
      await event('payment.settled', appA, { paymentId: 'a-1' });
      await event('payment.settled', appA, { paymentId: 'a-2' });
      await event('payment.rejected', appB, { paymentId: 'b-1' });
      await event('payment.settled', 'not-a-uuid');
      await round();
      const paymentIds = (hooks: typeof hooksA) =>
        hooks.received
          .map((r) => (JSON.parse(r.body) as { data: { paymentId: string } }).data.paymentId)
          .sort();
      assert.deepEqual(paymentIds(hooksA), ['a-1', 'a-2']);
      assert.deepEqual(paymentIds(hooksB), ['b-1']);
    });

    it('retries a failing receiver with back-off and delivers exactly once when it recovers', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const hooks = await listen((n) => (n === 1 ? 500 : n === 2 ? 503 : 200));
      const created = await endpoint(dev, appId, { url: hooks.url, eventTypes: ['payment.settled'] });
      await event('payment.settled', appId);
      await round();
      let [delivery] = (await deliveriesOf(dev, appId, created.id)).deliveries;
      assert.deepEqual([delivery?.status, delivery?.attempts, delivery?.responseStatus], ['pending', 1, 500]);
      const firstRetryAt = Date.parse(String(delivery?.nextAttemptAt));
      assert.ok(firstRetryAt > clockMs && firstRetryAt <= clockMs + RETRY_CEILINGS_MS[0]);
      assert.equal(await round(), 0, 'not due before its time');

      advance(RETRY_CEILINGS_MS[0]);
      await round();
      [delivery] = (await deliveriesOf(dev, appId, created.id)).deliveries;
      assert.deepEqual([delivery?.status, delivery?.attempts, delivery?.responseStatus], ['pending', 2, 503]);
      const [failing] = await db.query<{ failing_since: Date | null }>(
        'select failing_since from webhook_endpoints where id = $1',
        [created.id],
      );
      assert.ok(failing?.failing_since, 'the endpoint is failing');

      advance(RETRY_CEILINGS_MS[1]);
      await round();
      advance(48 * HOUR_MS);
      await round();
      [delivery] = (await deliveriesOf(dev, appId, created.id)).deliveries;
      assert.deepEqual(
        [delivery?.status, delivery?.attempts, delivery?.nextAttemptAt],
        ['delivered', 3, null],
      );
      assert.equal(hooks.received.length, 3);
      assert.equal(new Set(hooks.received.map((r) => r.headers['webhook-id'])).size, 1, 'one webhook-id');
      const [recovered] = await db.query<{ failing_since: Date | null }>(
        'select failing_since from webhook_endpoints where id = $1',
        [created.id],
      );
      assert.equal(recovered?.failing_since, null);
    });

    it('times out a receiver that never answers, retries it later, and keeps delivering to the others', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      let hang = true;
      const stuck = await listen(() => (hang ? 'hang' : 200));
      const healthy = await listen();
      const stuckEndpoint = await endpoint(dev, appId, { url: stuck.url, eventTypes: ['*'] });
      await endpoint(dev, appId, { url: healthy.url, eventTypes: ['*'] });
      await event('payment.settled', appId);

      const startedMs = Date.now();
      assert.equal(await dispatcher.dispatchOnce(), 2);
      assert.ok(Date.now() - startedMs < 1000, 'a round does not wait for receivers');
      await until(() => healthy.received.length === 1);
      assert.equal(stuck.received.length, 1);
      // More events while the stuck receiver still holds its attempt: the healthy one gets them at once.
      await event('payment.rejected', appId);
      await dispatcher.dispatchOnce();
      await until(() => healthy.received.length === 2);
      const [inFlight] = (await deliveriesOf(dev, appId, stuckEndpoint.id, '?status=sending')).deliveries;
      assert.ok(inFlight, 'the stuck attempt is still in flight');

      await dispatcher.idle();
      const stuckLog = (await deliveriesOf(dev, appId, stuckEndpoint.id)).deliveries;
      const first = stuckLog.find((d) => d.eventType === 'payment.settled');
      assert.deepEqual(
        [first?.status, first?.attempts, first?.error],
        ['pending', 1, 'timeout after 1000 ms'],
      );
      assert.ok(first?.nextAttemptAt);

      hang = false;
      advance(HOUR_MS);
      await round();
      const after = (await deliveriesOf(dev, appId, stuckEndpoint.id)).deliveries;
      assert.deepEqual(
        after.map((d) => d.status),
        ['delivered', 'delivered'],
      );
    });

    it("fails an attempt in flight when its endpoint is disabled, and a disabled endpoint's deliveries take no one's slot", async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const stuck = await listen(() => 'hang');
      const stuckEndpoint = await endpoint(dev, appId, { url: stuck.url, eventTypes: ['*'] });
      await event('payment.settled', appId);
      assert.equal(await dispatcher.dispatchOnce(), 1);
      const disabled = await app.inject({
        method: 'PATCH',
        url: `/v1/apps/${appId}/webhooks/${stuckEndpoint.id}`,
        headers: dev,
        payload: { enabled: false },
      });
      assert.equal(disabled.statusCode, 200, disabled.body);
      await dispatcher.idle();
      const [given] = (await deliveriesOf(dev, appId, stuckEndpoint.id)).deliveries;
      assert.deepEqual([given?.status, given?.error], ['failed', 'endpoint_disabled'], 'not retried');

      // Should a disabled endpoint still hold a due delivery, the endpoint that is enabled gets the one slot.
      await db.query(
        `update webhook_deliveries set status = 'pending', next_attempt_at = $2 where endpoint_id = $1`,
        [stuckEndpoint.id, new Date(clockMs - HOUR_MS)],
      );
      const healthy = await listen();
      const healthyEndpoint = await endpoint(dev, appId, {
        url: healthy.url,
        eventTypes: ['payment.returned'],
      });
      await event('payment.returned', appId);
      await dispatcher.dispatchOnce();
      await dispatcher.idle();
      await db.query(
        `update webhook_deliveries set status = 'pending', next_attempt_at = $2 where endpoint_id = $1`,
        [healthyEndpoint.id, now()],
      );
      const claimed = await claimDueDeliveries(db, {
        now: now(),
        leaseUntil: new Date(clockMs + 60_000),
        slots: 1,
        perEndpoint: 4,
        perApp: 4,
        busy: [],
        inFlight: new Map(),
      });
      assert.deepEqual(
        claimed.map((delivery) => delivery.endpointId),
        [healthyEndpoint.id],
      );
    });

    it("holds at most an app's share of the slots on its receivers that never answer; the other apps' are delivered", async () => {
      const busyDev = await developer();
      const busyApp = await newApp(busyDev);
      const stuck = await listen(() => 'hang');
      for (let i = 0; i < 6; i++) await endpoint(busyDev, busyApp, { url: stuck.url, eventTypes: ['*'] });
      for (let i = 0; i < 4; i++) await event('payment.settled', busyApp);
      advance(1000);
      const otherDev = await developer();
      const otherApp = await newApp(otherDev);
      const healthy = await listen();
      await endpoint(otherDev, otherApp, { url: healthy.url, eventTypes: ['*'] });
      await event('payment.settled', otherApp);

      // 24 deliveries of the busy app are due first: without a share per app they would take all 16 slots.
      assert.equal(await dispatcher.dispatchOnce(), 5);
      await until(() => healthy.received.length === 1);
      await until(() => stuck.received.length === 4);
      assert.equal(await dispatcher.dispatchOnce(), 0, 'the busy app has its share in flight');

      // A claim gives an app what it may still start, whatever else is due.
      const claimed = await claimDueDeliveries(db, {
        now: now(),
        leaseUntil: new Date(clockMs + 60_000),
        slots: 16,
        perEndpoint: 4,
        perApp: 6,
        busy: [],
        inFlight: new Map([[busyApp, 4]]),
      });
      assert.equal(claimed.length, 2);
      await db.query(`update webhook_deliveries set status = 'pending' where id = any($1::uuid[])`, [
        claimed.map((delivery) => delivery.id),
      ]);
      await stuck.close(); // the rest of its deliveries fail at once instead of hanging in turn
    });

    it('fails a delivery after 24 hours of retries and disables an endpoint failing that long, with an event', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const broken = await listen(() => 500);
      const watcher = await listen();
      const created = await endpoint(dev, appId, { url: broken.url, eventTypes: ['payment.*'] });
      await endpoint(dev, appId, { url: watcher.url, eventTypes: ['webhook.*'] });
      await event('payment.settled', appId);
      await round();
      for (const step of [11, 11]) {
        advance(step * HOUR_MS);
        await round();
      }
      let shown = (
        await app.inject({ url: `/v1/apps/${appId}/webhooks/${created.id}`, headers: dev })
      ).json();
      assert.equal(shown.enabled, true, 'not yet a day');
      advance(3 * HOUR_MS);
      await round();
      const [delivery] = (await deliveriesOf(dev, appId, created.id)).deliveries;
      assert.deepEqual([delivery?.status, delivery?.attempts, delivery?.nextAttemptAt], ['failed', 4, null]);
      shown = (await app.inject({ url: `/v1/apps/${appId}/webhooks/${created.id}`, headers: dev })).json();
      assert.deepEqual([shown.enabled, shown.disabledReason], [false, 'failing']);
      const events = await eventsAbout(db, created.id);
      assert.deepEqual(
        events.map((e) => [e.type, e.payload]),
        [
          [
            'webhook.endpoint.disabled',
            { appId, endpointId: created.id, clientId: appId, reason: 'failing' },
          ],
        ],
      );
      // The app's other endpoint hears of it.
      await round();
      assert.deepEqual(watcher.types(), ['webhook.endpoint.disabled']);

      // A disabled endpoint gets nothing more, and replay waits for it to be enabled again.
      await event('payment.settled', appId);
      await round();
      assert.equal(broken.received.length, 4);
      const replay = await webhooks.replay(
        (await app.inject({ url: '/v1/developers/me', headers: dev })).json().id,
        appId,
        created.id,
        String(delivery?.id),
      );
      assert.deepEqual(replay, { ok: false, code: 'webhook_endpoint_disabled' });
      const enabled = await app.inject({
        method: 'PATCH',
        url: `/v1/apps/${appId}/webhooks/${created.id}`,
        headers: dev,
        payload: { enabled: true },
      });
      assert.deepEqual([enabled.json().enabled, enabled.json().disabledReason], [true, null]);
    });

    it('disables an endpoint at once when it answers 410 Gone', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const gone = await listen(() => 410);
      const created = await endpoint(dev, appId, { url: gone.url, eventTypes: ['*'] });
      await event('payment.settled', appId);
      await round();
      const shown = (
        await app.inject({ url: `/v1/apps/${appId}/webhooks/${created.id}`, headers: dev })
      ).json();
      assert.deepEqual([shown.enabled, shown.disabledReason], [false, 'gone']);
      const [delivery] = (await deliveriesOf(dev, appId, created.id)).deliveries;
      assert.deepEqual([delivery?.status, delivery?.responseStatus], ['failed', 410]);
    });

    it('signs with both secrets for 24 hours after a rotation, then with the new one only', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const hooks = await listen();
      const created = await endpoint(dev, appId, { url: hooks.url, eventTypes: ['*'] });
      const rotated = await app.inject({
        method: 'POST',
        url: `/v1/apps/${appId}/webhooks/${created.id}/secret`,
        headers: dev,
      });
      assert.equal(rotated.statusCode, 200, rotated.body);
      const secret = rotated.json().secret as string;
      assert.ok(secret.startsWith('whsec_') && secret !== created.secret);
      assert.equal(Date.parse(rotated.json().previousSecretExpiresAt), clockMs + 24 * HOUR_MS);

      await event('payment.settled', appId);
      await round();
      const [during] = hooks.received as [Received];
      assert.equal(String(during.headers['webhook-signature']).split(' ').length, 2);
      for (const key of [created.secret, secret]) {
        assert.equal(
          (new Webhook(key).verify(during.body, during.headers as Record<string, string>) as { type: string })
            .type,
          'payment.settled',
        );
      }

      advance(24 * HOUR_MS + 1000);
      await event('payment.rejected', appId);
      await round();
      const afterwards = hooks.received[1] as Received;
      const signatures = String(afterwards.headers['webhook-signature']).split(' ');
      const id = String(afterwards.headers['webhook-id']);
      const timestamp = Number(afterwards.headers['webhook-timestamp']);
      // The clock has moved a day on, so compare with the package's signature rather than verify() against now.
      assert.deepEqual(signatures, [
        new Webhook(secret).sign(id, new Date(timestamp * 1000), afterwards.body),
      ]);
      assert.deepEqual(signatures, [sign(secret, id, timestamp, afterwards.body)]);
    });

    it('refuses webhook URLs that could reach the bank’s own network in production', async () => {
      const dns: Record<string, string[]> = {
        'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
        'rebind.example': ['93.184.215.14'],
        'sneaky.example': ['93.184.215.14', '10.1.2.3'],
      };
      const resolve: Resolve = async (host) => {
        const found = dns[host];
        if (found) return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
        if (host === 'localhost') return [{ address: '127.0.0.1', family: 4 }];
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      };
      const apps = { get: async (_developerId: string, appId: string) => ({ id: appId }) };
      const production = new Webhooks({ db, pii, mode: 'production', apps, now, resolve });
      const sandbox = new Webhooks({ db, pii, mode: 'sandbox', apps, now, resolve });
      const dev = await developer();
      const appId = await newApp(dev);
      const refused = async (service: Webhooks, url: string) => {
        const outcome = await service.create('any', appId, { url, eventTypes: ['*'] });
        return outcome.ok ? 'accepted' : outcome.code;
      };
      for (const url of [
        'http://hooks.example.com/in',
        'https://localhost/in',
        'https://10.0.0.1/in',
        'https://169.254.169.254/latest/meta-data/',
        'https://[::1]/in',
        'https://[::ffff:127.0.0.1]/in',
        'https://0x7f.1/in',
        'https://100.64.0.1/in',
        'https://[fd00::1]/in',
        'https://0.0.0.0/in',
        'https://sneaky.example/in',
        'https://nowhere.example/in',
        'https://user:pass@hooks.example.com/in',
        'not a url',
      ]) {
        assert.equal(await refused(production, url), 'invalid_webhook_url', url);
      }
      assert.equal(await refused(production, 'https://hooks.example.com/in'), 'accepted');
      assert.equal(await refused(sandbox, 'http://127.0.0.1:9/in'), 'accepted');
      assert.equal(await refused(sandbox, 'http://localhost:9/in'), 'accepted');
      assert.equal(await refused(sandbox, 'http://169.254.169.254/latest/meta-data/'), 'invalid_webhook_url');
      assert.equal(await refused(sandbox, 'ftp://hooks.example.com/in'), 'invalid_webhook_url');
      assert.equal(addressProblem('8.8.8.8', 'production'), undefined);
      assert.match(String(addressProblem('::1', 'production')), /loopback/);
      assert.match(String(addressProblem('fe80::1', 'sandbox')), /private or reserved/);

      // DNS rebinding: the name resolved to a public address when registered, to loopback when delivering.
      const rebinding = await production.create('any', appId, {
        url: 'https://rebind.example/in',
        eventTypes: ['*'],
      });
      assert.ok(rebinding.ok);
      dns['rebind.example'] = ['127.0.0.1'];
      const productionDispatcher = new WebhookDispatcher({ db, pii, mode: 'production', now, resolve });
      await event('payment.settled', appId);
      await round(productionDispatcher);
      const [delivery] = await db.query<{ status: string; error: string; attempts: number }>(
        'select status, error, attempts from webhook_deliveries where endpoint_id = $1',
        [rebinding.endpoint.id],
      );
      assert.equal(delivery?.status, 'pending');
      assert.match(
        String(delivery?.error),
        /^address_not_allowed: rebind\.example resolves to 127\.0\.0\.1, a loopback address$/,
      );
    });

    it("answers 404 for another developer's app or endpoint, and for an endpoint under another app", async () => {
      const owner = await developer();
      const other = await developer();
      const appId = await newApp(owner);
      const secondApp = await newApp(owner);
      const hooks = await listen();
      const created = await endpoint(owner, appId, { url: hooks.url, eventTypes: ['*'] });
      await event('payment.settled', appId);
      await round();
      const [delivery] = (await deliveriesOf(owner, appId, created.id)).deliveries;
      const base = `/v1/apps/${appId}/webhooks`;
      for (const [method, url, payload] of [
        ['POST', base, { url: hooks.url, eventTypes: ['*'] }],
        ['GET', base],
        ['GET', `${base}/${created.id}`],
        ['PATCH', `${base}/${created.id}`, { enabled: false }],
        ['POST', `${base}/${created.id}/secret`],
        ['GET', `${base}/${created.id}/deliveries`],
        ['POST', `${base}/${created.id}/deliveries/${delivery?.id}/replay`],
        ['DELETE', `${base}/${created.id}`],
      ] as const) {
        const response = await app.inject({ method, url, headers: other, ...(payload ? { payload } : {}) });
        assert.deepEqual([response.statusCode, response.json().code], [404, 'not_found'], `${method} ${url}`);
      }
      const crossed = await app.inject({
        url: `/v1/apps/${secondApp}/webhooks/${created.id}`,
        headers: owner,
      });
      assert.equal(crossed.statusCode, 404);
      const anonymous = await app.inject({ url: base });
      assert.equal(anonymous.statusCode, 401);
      const still = await app.inject({ url: `${base}/${created.id}`, headers: owner });
      assert.equal(still.json().enabled, true, 'nothing changed');
    });

    it('replays a delivery with the same webhook-id, and pages the log newest first', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const hooks = await listen();
      const created = await endpoint(dev, appId, { url: hooks.url, eventTypes: ['*'] });
      await event('payment.settled', appId);
      await round();
      const [original] = (await deliveriesOf(dev, appId, created.id)).deliveries;
      const replayed = await app.inject({
        method: 'POST',
        url: `/v1/apps/${appId}/webhooks/${created.id}/deliveries/${original?.id}/replay`,
        headers: dev,
      });
      assert.equal(replayed.statusCode, 202, replayed.body);
      assert.deepEqual([replayed.json().status, replayed.json().replayOf], ['pending', original?.id]);
      await round();
      assert.equal(hooks.received.length, 2);
      assert.equal(hooks.received[0]?.headers['webhook-id'], hooks.received[1]?.headers['webhook-id']);
      assert.equal(hooks.received[0]?.body, hooks.received[1]?.body);

      const page1 = await deliveriesOf(dev, appId, created.id, '?limit=1');
      assert.equal(page1.deliveries[0]?.replayOf, original?.id, 'newest first');
      assert.ok(page1.nextCursor);
      const page2 = await deliveriesOf(dev, appId, created.id, `?limit=1&cursor=${page1.nextCursor}`);
      assert.deepEqual(
        page2.deliveries.map((d) => [d.id, d.status]),
        [[original?.id, 'delivered']],
      );
      assert.equal(page2.nextCursor, null);
      const forged = await app.inject({
        url: `/v1/apps/${appId}/webhooks/${created.id}/deliveries?cursor=${Buffer.from('other:1').toString('base64url')}`,
        headers: dev,
      });
      assert.deepEqual([forged.statusCode, forged.json().code], [400, 'invalid_cursor']);
    });

    it('manages endpoints: list, change, disable and enable, delete', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const hooks = await listen();
      const first = await endpoint(dev, appId, {
        url: hooks.url,
        eventTypes: ['payment.*'],
        description: 'orders',
      });
      const second = await endpoint(dev, appId, { url: hooks.url, eventTypes: ['*'] });
      const page = await app.inject({ url: `/v1/apps/${appId}/webhooks?limit=1`, headers: dev });
      assert.deepEqual(
        page.json().endpoints.map((e: { id: string }) => e.id),
        [first.id],
      );
      const rest = await app.inject({
        url: `/v1/apps/${appId}/webhooks?limit=1&cursor=${page.json().nextCursor}`,
        headers: dev,
      });
      assert.deepEqual(
        [rest.json().endpoints.map((e: { id: string }) => e.id), rest.json().nextCursor],
        [[second.id], null],
      );

      const changed = await app.inject({
        method: 'PATCH',
        url: `/v1/apps/${appId}/webhooks/${first.id}`,
        headers: dev,
        payload: { eventTypes: ['payment.settled'], description: null, enabled: false },
      });
      assert.equal(changed.statusCode, 200, changed.body);
      assert.deepEqual(
        [
          changed.json().eventTypes,
          changed.json().description,
          changed.json().enabled,
          changed.json().disabledReason,
        ],
        [['payment.settled'], null, false, 'developer'],
      );
      await event('payment.settled', appId);
      await round();
      assert.equal(hooks.received.length, 1, 'only the enabled endpoint');

      const removed = await app.inject({
        method: 'DELETE',
        url: `/v1/apps/${appId}/webhooks/${second.id}`,
        headers: dev,
      });
      assert.equal(removed.statusCode, 204);
      const gone = await app.inject({ url: `/v1/apps/${appId}/webhooks/${second.id}`, headers: dev });
      assert.equal(gone.statusCode, 404);
    });

    it('abandons a stuck attempt at shutdown; another process takes it when its lease runs out', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      let hang = true;
      const hooks = await listen(() => (hang ? 'hang' : 200));
      const created = await endpoint(dev, appId, { url: hooks.url, eventTypes: ['*'] });
      await event('payment.settled', appId);
      const dying = new WebhookDispatcher({ db, pii, mode: 'sandbox', now, timeoutMs: 60_000 });
      await dying.dispatchOnce();
      await until(() => hooks.received.length === 1);
      const startedMs = Date.now();
      await dying.close();
      assert.ok(Date.now() - startedMs < 1000, 'shutdown does not wait for a receiver');
      assert.equal(await dying.dispatchOnce(), 0, 'a closed dispatcher starts nothing');
      const [held] = (await deliveriesOf(dev, appId, created.id)).deliveries;
      assert.deepEqual([held?.status, held?.attempts], ['sending', 1]);

      hang = false;
      assert.equal(await round(), 0, 'still leased');
      advance(60_000 + 30_000);
      assert.equal(await round(), 1);
      const [delivered] = (await deliveriesOf(dev, appId, created.id)).deliveries;
      assert.deepEqual([delivered?.status, delivered?.attempts], ['delivered', 2]);
    });

    it('delivers each event once when two dispatchers run at the same time', async () => {
      const dev = await developer();
      const appId = await newApp(dev);
      const hooks = await listen();
      await endpoint(dev, appId, { url: hooks.url, eventTypes: ['*'] });
      for (let i = 0; i < 30; i++) await event('payment.settled', appId, { n: i });
      const second = new WebhookDispatcher({ db, pii, mode: 'sandbox', now, timeoutMs: 1000 });
      await Promise.all([dispatcher.dispatchOnce(), second.dispatchOnce()]);
      await Promise.all([dispatcher.idle(), second.idle()]);
      for (let i = 0; i < 5 && hooks.received.length < 30; i++) await Promise.all([round(), round(second)]);
      assert.equal(hooks.received.length, 30);
      assert.equal(new Set(hooks.received.map((r) => r.headers['webhook-id'])).size, 30);
    });
  });
}

describe('retry schedule', () => {
  it('draws each wait below the ceiling for the attempt, honours Retry-After within bounds', () => {
    assert.equal(
      retryDelayMs(1, () => 0.5),
      2500,
    );
    assert.equal(
      retryDelayMs(2, () => 0.5),
      150_000,
    );
    assert.equal(
      retryDelayMs(1, () => 0),
      1000,
      'never a hot loop',
    );
    assert.equal(
      retryDelayMs(40, () => 0.999_999),
      Math.floor(0.999_999 * 36_000_000),
    );
    assert.equal(
      retryDelayMs(1, () => 0, 60_000),
      60_000,
    );
    assert.equal(
      retryDelayMs(1, () => 0, 10 * 24 * HOUR_MS),
      36_000_000,
    );
  });
});
