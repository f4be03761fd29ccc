// Webhooks: developers' endpoints per app, and the dispatcher that delivers the transactional outbox's events
// to them following Standard Webhooks 1.0 (https://www.standardwebhooks.com): signed POSTs of
// `{type, timestamp, data}`, retried with back-off for a day, endpoints disabled after a day of failures.
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { v7 as uuidv7 } from 'uuid';
import type { Mode } from '../config.ts';
import type { Db } from '../db/db.ts';
import { emit } from '../events/outbox.ts';
import { addressProblem, bareHost } from '../outbound.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import { newSecret, webhookHeaders } from './signing.ts';
import {
  type ClaimedDelivery,
  claimDueDeliveries,
  claimUndispatchedEvents,
  clearEndpointFailures,
  type Delivery,
  type DeliveryStatus,
  type DisabledReason,
  deleteEndpoint,
  disableEndpoint,
  enabledEndpointsOf,
  enableEndpoint,
  findDelivery,
  findEndpoint,
  hurryDelivery,
  insertDeliveries,
  insertEndpoint,
  insertReplay,
  listDeliveries,
  listEndpoints,
  markEventsDispatched,
  type NewDelivery,
  noteEndpointFailure,
  pruneDeliveries,
  recordAttempt,
  type StoredEndpoint,
  saveEndpointSettings,
  saveSecrets,
} from './store.ts';

export const ENDPOINTS_PER_APP_MAX = 20;
export const ENDPOINTS_PAGE_MAX = 100;
export const DELIVERIES_PAGE_MAX = 100;
export const EVENT_TYPES_MAX = 50;
export const URL_LENGTH_MAX = 2000;
/** `payment.settled`, `payment.*` (the prefix and everything under it) or `*`; Standard Webhooks' characters. */
export const EVENT_TYPE_PATTERN = '^(\\*|[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*(\\.\\*)?)$';
/** During a rotation the previous secret keeps signing this long, so receivers can switch without a gap. */
export const PREVIOUS_SECRET_TTL_MS = 24 * 60 * 60 * 1000;
/** A delivery is retried for this long after it was created, then fails. */
export const DELIVERY_RETRY_WINDOW_MS = 24 * 60 * 60 * 1000;
/** An endpoint whose attempts have failed without a break for this long is disabled. */
export const ENDPOINT_FAILING_MAX_MS = 24 * 60 * 60 * 1000;
/**
 * Ceiling of the wait after the n-th failed attempt (Standard Webhooks' example schedule, capped at 10 h); the
 * wait is drawn uniformly below it ("full jitter"), so receivers recovering from an outage are not hit in
 * lockstep.
 */
export const RETRY_CEILINGS_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000] as const;
const RETRY_DELAY_MIN_MS = 1000;
// A safety net only: the retry window ends deliveries long before on any realistic draw.
const ATTEMPTS_MAX = 30;
const ATTEMPT_TIMEOUT_MS = 10_000;
const CONCURRENCY = 16;
const PER_ENDPOINT_CONCURRENCY = 4;
// One app's receivers, hung or slow, may hold a quarter of the slots, never the others' share.
const PER_APP_CONCURRENCY = 4;
// The claim outlives the attempt's timeout by this much before another dispatcher may take the delivery.
const LEASE_MARGIN_MS = 30_000;
const FANOUT_BATCH_EVENTS = 200;
const FANOUT_BATCHES_PER_ROUND = 10;
const DNS_TIMEOUT_MS = 5000;
const DELIVERY_LOG_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
const PRUNE_BATCH_ROWS = 1000;
const ERROR_TEXT_MAX = 200;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// ---- where webhooks may go

/** Resolves a host name to every address it has (node:dns `lookup` with `all: true`). */
export type Resolve = (hostname: string) => Promise<readonly { address: string; family: number }[]>;

const systemResolve: Resolve = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** What can be told from the URL alone: absolute http(s), no credentials, no fragment; https in production. */
export function urlProblem(text: string, mode: Mode): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not an absolute URL';
  }
  if (text.length > URL_LENGTH_MAX) return `longer than ${URL_LENGTH_MAX} characters`;
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && mode === 'sandbox'))
    return mode === 'sandbox' ? 'must be http or https' : 'must be https';
  if (url.username !== '' || url.password !== '')
    return 'must not carry credentials (receivers verify signatures)';
  if (url.hash !== '' || text.includes('#')) return 'must not have a fragment';
  return undefined;
}

type Target =
  | { ok: true; url: URL; addresses: { address: string; family: number }[] }
  | { ok: false; problem: string };

/**
 * Resolves the URL's host and checks every address it resolves to: one bad address refuses the host, since
 * the connection could use any of them. Run at registration and before each attempt (DNS rebinding); the
 * attempt then connects to exactly the addresses checked here.
 */
async function resolveTarget(text: string, mode: Mode, resolve: Resolve): Promise<Target> {
  const problem = urlProblem(text, mode);
  if (problem) return { ok: false, problem };
  const url = new URL(text);
  const host = bareHost(url);
  let addresses: { address: string; family: number }[];
  if (isIP(host)) {
    addresses = [{ address: host, family: isIP(host) }];
  } else {
    // getaddrinfo takes no signal: race it, so a slow resolver costs an attempt at most DNS_TIMEOUT_MS.
    let timer: NodeJS.Timeout | undefined;
    try {
      addresses = [
        ...(await Promise.race([
          resolve(host),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('timeout')), DNS_TIMEOUT_MS);
          }),
        ])),
      ];
    } catch {
      return { ok: false, problem: `${host} does not resolve` };
    } finally {
      clearTimeout(timer);
    }
  }
  if (addresses.length === 0) return { ok: false, problem: `${host} does not resolve` };
  for (const { address } of addresses) {
    const refused = addressProblem(address, mode);
    if (refused) {
      return {
        ok: false,
        problem: isIP(host) ? `${host} is ${refused}` : `${host} resolves to ${address}, ${refused}`,
      };
    }
  }
  return { ok: true, url, addresses };
}

/** A `lookup` for node:net that answers with the addresses already checked, so no second DNS answer is used. */
function pinnedLookup(addresses: readonly { address: string; family: number }[]): LookupFunction {
  return (_hostname, options, callback) => {
    const wanted = options.family === 4 || options.family === 6 ? options.family : undefined;
    const usable = addresses.filter((a) => wanted === undefined || a.family === wanted);
    const first = usable[0];
    if (!first) {
      callback(
        Object.assign(new Error('no checked address of the requested family'), { code: 'ENOTFOUND' }),
        '',
      );
      return;
    }
    if (options.all) (callback as unknown as (e: null, all: typeof usable) => void)(null, usable);
    else callback(null, first.address, first.family);
  };
}

// ---- event types

export function eventTypeMatches(patterns: readonly string[], type: string): boolean {
  return patterns.some(
    (pattern) =>
      pattern === '*' ||
      pattern === type ||
      (pattern.endsWith('.*') && type.startsWith(pattern.slice(0, -1))),
  );
}

// ---- endpoint management

export interface EndpointView {
  readonly id: string;
  readonly appId: string;
  readonly url: string;
  readonly eventTypes: readonly string[];
  readonly description: string | null;
  readonly enabled: boolean;
  readonly disabledReason: DisabledReason | null;
  /** While a rotated-out secret still signs: until when. */
  readonly previousSecretExpiresAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export type WebhookSettingsError = 'invalid_webhook_url' | 'webhook_endpoint_limit_reached';
export type EndpointOutcome =
  | { ok: true; endpoint: EndpointView; secret?: string }
  | { ok: false; code: WebhookSettingsError | 'not_found'; detail?: string };
export type ReplayOutcome =
  | { ok: true; delivery: Delivery }
  | { ok: false; code: 'not_found' | 'webhook_endpoint_disabled' };

/** The app registry as webhooks need it: an app of this developer's, or nothing. */
export interface AppDirectory {
  get(developerId: string, appId: string): Promise<{ id: string } | undefined>;
}

export interface NewEndpoint {
  readonly url: string;
  readonly eventTypes: readonly string[];
  readonly description?: string | null;
}

export interface EndpointChanges {
  readonly url?: string;
  readonly eventTypes?: readonly string[];
  readonly description?: string | null;
  readonly enabled?: boolean;
}

const secretContext = (endpointId: string) => fieldContext('webhook_endpoints', 'secret_enc', endpointId);
const previousSecretContext = (endpointId: string) =>
  fieldContext('webhook_endpoints', 'previous_secret_enc', endpointId);

/** Developers manage their apps' endpoints and read and replay their deliveries. */
export class Webhooks {
  readonly #db: Db;
  readonly #pii: Pii;
  readonly #mode: Mode;
  readonly #apps: AppDirectory;
  readonly #now: () => Date;
  readonly #resolve: Resolve;

  constructor(options: {
    db: Db;
    pii: Pii;
    mode: Mode;
    apps: AppDirectory;
    now?: () => Date;
    resolve?: Resolve;
  }) {
    this.#db = options.db;
    this.#pii = options.pii;
    this.#mode = options.mode;
    this.#apps = options.apps;
    this.#now = options.now ?? (() => new Date());
    this.#resolve = options.resolve ?? systemResolve;
  }

  async create(developerId: string, appId: string, input: NewEndpoint): Promise<EndpointOutcome> {
    if (!(await this.#apps.get(developerId, appId))) return { ok: false, code: 'not_found' };
    const target = await resolveTarget(input.url, this.#mode, this.#resolve);
    if (!target.ok) return { ok: false, code: 'invalid_webhook_url', detail: target.problem };
    const now = this.#now();
    const id = uuidv7();
    const secret = newSecret();
    const endpoint: StoredEndpoint = {
      id,
      appId,
      url: input.url,
      eventTypes: [...new Set(input.eventTypes)],
      description: input.description ?? null,
      enabled: true,
      disabledReason: null,
      secretEnc: this.#pii.encrypt(secret, secretContext(id)),
      previousSecretEnc: null,
      previousSecretExpiresAt: null,
      failingSince: null,
      createdAt: now,
      updatedAt: now,
    };
    const inserted = await this.#db.transaction((tx) => insertEndpoint(tx, endpoint, ENDPOINTS_PER_APP_MAX));
    if (!inserted) {
      return {
        ok: false,
        code: 'webhook_endpoint_limit_reached',
        detail: `an app has at most ${ENDPOINTS_PER_APP_MAX} endpoints`,
      };
    }
    return { ok: true, endpoint: this.#view(endpoint), secret };
  }

  async list(developerId: string, appId: string, afterId: string | undefined, limit: number) {
    if (!(await this.#apps.get(developerId, appId))) return undefined;
    const stored = await listEndpoints(this.#db, appId, afterId, Math.min(limit, ENDPOINTS_PAGE_MAX + 1));
    return stored.map((endpoint) => this.#view(endpoint));
  }

  async get(developerId: string, appId: string, id: string): Promise<EndpointView | undefined> {
    const endpoint = await this.#find(developerId, appId, id);
    return endpoint && this.#view(endpoint);
  }

  async update(
    developerId: string,
    appId: string,
    id: string,
    changes: EndpointChanges,
  ): Promise<EndpointOutcome> {
    const endpoint = await this.#find(developerId, appId, id);
    if (!endpoint) return { ok: false, code: 'not_found' };
    if (changes.url !== undefined && changes.url !== endpoint.url) {
      const target = await resolveTarget(changes.url, this.#mode, this.#resolve);
      if (!target.ok) return { ok: false, code: 'invalid_webhook_url', detail: target.problem };
    }
    const now = this.#now();
    await this.#db.transaction(async (tx) => {
      await saveEndpointSettings(
        tx,
        id,
        {
          url: changes.url ?? endpoint.url,
          eventTypes: changes.eventTypes ? [...new Set(changes.eventTypes)] : endpoint.eventTypes,
          description: changes.description === undefined ? endpoint.description : changes.description,
        },
        now,
      );
      if (changes.enabled === true) await enableEndpoint(tx, id, now);
      if (changes.enabled === false) await disableEndpoint(tx, id, 'developer', now);
    });
    const updated = await findEndpoint(this.#db, appId, id);
    return updated ? { ok: true, endpoint: this.#view(updated) } : { ok: false, code: 'not_found' };
  }

  /** A new secret, shown once; the current one keeps signing beside it for PREVIOUS_SECRET_TTL_MS. */
  async rotateSecret(developerId: string, appId: string, id: string): Promise<EndpointOutcome> {
    const endpoint = await this.#find(developerId, appId, id);
    if (!endpoint) return { ok: false, code: 'not_found' };
    const now = this.#now();
    const current = await this.#pii.decrypt(endpoint.secretEnc, secretContext(id));
    const secret = newSecret();
    await saveSecrets(
      this.#db,
      id,
      {
        secretEnc: this.#pii.encrypt(secret, secretContext(id)),
        // Only the secret being replaced keeps signing: a rotation during a rotation drops the oldest.
        previousSecretEnc: this.#pii.encrypt(current, previousSecretContext(id)),
        previousSecretExpiresAt: new Date(now.getTime() + PREVIOUS_SECRET_TTL_MS),
      },
      now,
    );
    const updated = await findEndpoint(this.#db, appId, id);
    return updated ? { ok: true, endpoint: this.#view(updated), secret } : { ok: false, code: 'not_found' };
  }

  async delete(developerId: string, appId: string, id: string): Promise<boolean> {
    if (!(await this.#apps.get(developerId, appId))) return false;
    return deleteEndpoint(this.#db, appId, id);
  }

  async deliveries(
    developerId: string,
    appId: string,
    endpointId: string,
    page: { beforeId?: string; status?: DeliveryStatus; limit: number },
  ): Promise<Delivery[] | undefined> {
    const endpoint = await this.#find(developerId, appId, endpointId);
    if (!endpoint) return undefined;
    return listDeliveries(
      this.#db,
      endpoint.id,
      page.beforeId,
      page.status,
      Math.min(page.limit, DELIVERIES_PAGE_MAX + 1),
    );
  }

  /**
   * Sends a delivery again, now, with the same webhook-id (receivers deduplicate on it): a waiting one is
   * brought forward, one being sent is left to finish, a finished one is repeated as a new delivery.
   */
  async replay(
    developerId: string,
    appId: string,
    endpointId: string,
    deliveryId: string,
  ): Promise<ReplayOutcome> {
    const endpoint = await this.#find(developerId, appId, endpointId);
    const delivery = endpoint && (await findDelivery(this.#db, endpoint.id, deliveryId));
    if (!endpoint || !delivery) return { ok: false, code: 'not_found' };
    if (!endpoint.enabled) return { ok: false, code: 'webhook_endpoint_disabled' };
    const now = this.#now();
    if (delivery.status === 'pending' || delivery.status === 'sending') {
      const current = await hurryDelivery(this.#db, delivery.id, now);
      if (current && (current.status === 'pending' || current.status === 'sending'))
        return { ok: true, delivery: current };
    }
    return { ok: true, delivery: await insertReplay(this.#db, delivery, uuidv7(), now) };
  }

  async #find(developerId: string, appId: string, id: string): Promise<StoredEndpoint | undefined> {
    // Another developer's app, or an endpoint of another app, is absent: existence does not leak.
    if (!(await this.#apps.get(developerId, appId))) return undefined;
    return findEndpoint(this.#db, appId, id);
  }

  #view(endpoint: StoredEndpoint): EndpointView {
    const rotating =
      endpoint.previousSecretExpiresAt !== null && endpoint.previousSecretExpiresAt > this.#now()
        ? endpoint.previousSecretExpiresAt
        : null;
    return {
      id: endpoint.id,
      appId: endpoint.appId,
      url: endpoint.url,
      eventTypes: endpoint.eventTypes,
      description: endpoint.description,
      enabled: endpoint.enabled,
      disabledReason: endpoint.disabledReason,
      previousSecretExpiresAt: rotating,
      createdAt: endpoint.createdAt,
      updatedAt: endpoint.updatedAt,
    };
  }
}

// ---- the dispatcher

interface AttemptResult {
  readonly responseStatus: number | null;
  readonly error: string | null;
  readonly durationMs: number;
  readonly retryAfterMs?: number;
}

export interface DispatcherOptions {
  readonly db: Db;
  readonly pii: Pii;
  readonly mode: Mode;
  readonly now?: () => Date;
  /** Per attempt, connection to response headers; default 10 s. */
  readonly timeoutMs?: number;
  /** Attempts in flight in this process; default 16. */
  readonly concurrency?: number;
  /** Attempts in flight to one endpoint in this process; default 4. */
  readonly perEndpointConcurrency?: number;
  /** Attempts in flight to all of one app's endpoints in this process; default 4. */
  readonly perAppConcurrency?: number;
  /** In [0, 1): the jitter's draw; default Math.random. */
  readonly random?: () => number;
  readonly resolve?: Resolve;
  /** Failures of background work (attempts run after `dispatchOnce` returns). */
  readonly onError?: (error: unknown) => void;
}

/** The wait before the next attempt: full jitter under the schedule's ceiling, longer if the receiver asked. */
export function retryDelayMs(failedAttempts: number, random: () => number, retryAfterMs?: number): number {
  const ceilings = RETRY_CEILINGS_MS;
  const ceiling = ceilings[Math.min(failedAttempts, ceilings.length) - 1] ?? ceilings[0];
  const jittered = Math.max(RETRY_DELAY_MIN_MS, Math.floor(random() * ceiling));
  const longest = ceilings[ceilings.length - 1] as number;
  return retryAfterMs === undefined ? jittered : Math.min(Math.max(jittered, retryAfterMs), longest);
}

/** Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP date. */
function retryAfterMsOf(header: string | undefined, now: Date): number | undefined {
  if (header === undefined) return undefined;
  if (/^\d{1,9}$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}

const clientIdOf = (payload: Readonly<Record<string, unknown>>): string | undefined => {
  const clientId = payload.clientId;
  return typeof clientId === 'string' && UUID.test(clientId) ? clientId : undefined;
};

/**
 * Moves outbox events to developers' endpoints. `dispatchOnce` runs on a timer in every server process: it
 * fans new events out into deliveries, then starts the due attempts, which run in the background within the
 * concurrency limits, so a receiver that never answers holds one slot until its timeout and nothing else.
 * Several processes share the work through `FOR UPDATE SKIP LOCKED` and leases.
 */
export class WebhookDispatcher {
  readonly #db: Db;
  readonly #pii: Pii;
  readonly #mode: Mode;
  readonly #now: () => Date;
  readonly #timeoutMs: number;
  readonly #concurrency: number;
  readonly #perEndpoint: number;
  readonly #perApp: number;
  readonly #random: () => number;
  readonly #resolve: Resolve;
  readonly #onError: (error: unknown) => void;
  /** Attempt in flight -> its endpoint and app. */
  readonly #inFlight = new Map<Promise<void>, { readonly endpointId: string; readonly appId: string }>();
  #pumping: Promise<number> | undefined;
  #pumpRequested = false;
  #closing = false;
  /** Aborts the attempts in flight at shutdown; their leases hand them to another process. */
  readonly #stop = new AbortController();

  constructor(options: DispatcherOptions) {
    this.#db = options.db;
    this.#pii = options.pii;
    this.#mode = options.mode;
    this.#now = options.now ?? (() => new Date());
    this.#timeoutMs = options.timeoutMs ?? ATTEMPT_TIMEOUT_MS;
    this.#concurrency = options.concurrency ?? CONCURRENCY;
    this.#perEndpoint = options.perEndpointConcurrency ?? PER_ENDPOINT_CONCURRENCY;
    this.#perApp = options.perAppConcurrency ?? PER_APP_CONCURRENCY;
    this.#random = options.random ?? Math.random;
    this.#resolve = options.resolve ?? systemResolve;
    this.#onError = options.onError ?? (() => {});
  }

  /** One round: fan out new events, start due attempts. Returns how many attempts it started. */
  async dispatchOnce(): Promise<number> {
    if (this.#closing) return 0;
    for (let batch = 0; batch < FANOUT_BATCHES_PER_ROUND; batch++) {
      if ((await this.#fanOut()) < FANOUT_BATCH_EVENTS) break;
    }
    return this.#pump();
  }

  /** Resolves when no attempt is in flight (tests; shutdown). */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0 || this.#pumping) {
      await Promise.allSettled([...this.#inFlight.keys(), this.#pumping]);
    }
  }

  /**
   * Starts nothing more and abandons the attempts in flight: each stays claimed until its lease runs out,
   * then this or another process sends it again (receivers deduplicate on webhook-id).
   */
  async close(): Promise<void> {
    this.#closing = true;
    this.#stop.abort();
    await this.idle();
  }

  /** Deletes finished deliveries older than the log's retention; returns how many. */
  async prune(): Promise<number> {
    const before = new Date(this.#now().getTime() - DELIVERY_LOG_RETENTION_MS);
    return pruneDeliveries(this.#db, before, PRUNE_BATCH_ROWS);
  }

  /**
   * Claims up to FANOUT_BATCH_EVENTS undispatched events in a short transaction and turns each into one delivery per
   * enabled endpoint of the app it concerns (payload.clientId) whose types match and which existed when the
   * event happened. Touches the database only through `tx` while the transaction is open (PGlite has one
   * connection).
   */
  async #fanOut(): Promise<number> {
    const now = this.#now();
    return this.#db.transaction(async (tx) => {
      const events = await claimUndispatchedEvents(tx, FANOUT_BATCH_EVENTS);
      if (events.length === 0) return 0;
      const appIds = [
        ...new Set(events.map((event) => clientIdOf(event.payload)).filter((id) => id !== undefined)),
      ];
      const endpoints = await enabledEndpointsOf(tx, appIds);
      const deliveries: NewDelivery[] = [];
      for (const event of events) {
        const clientId = clientIdOf(event.payload);
        const targets = endpoints.filter(
          (endpoint) =>
            endpoint.appId === clientId &&
            endpoint.createdAt <= event.createdAt &&
            eventTypeMatches(endpoint.eventTypes, event.type),
        );
        if (targets.length === 0) continue;
        const body = JSON.stringify({
          type: event.type,
          timestamp: event.createdAt.toISOString(),
          data: event.payload,
        });
        for (const endpoint of targets) {
          deliveries.push({
            id: uuidv7(),
            endpointId: endpoint.id,
            appId: endpoint.appId,
            eventId: event.id,
            eventType: event.type,
            messageId: `evt_${event.id}`,
            body,
          });
        }
      }
      await insertDeliveries(tx, deliveries, now);
      await markEventsDispatched(
        tx,
        events.map((event) => event.id),
        now,
      );
      return events.length;
    });
  }

  /**
   * Fills free slots with due deliveries. One pump at a time per process; asking while one runs makes it
   * look once more, so work that became due meanwhile (a fan-out, a freed slot) is not left for the timer.
   */
  #pump(): Promise<number> {
    this.#pumpRequested = true;
    this.#pumping ??= this.#claimAndStart().finally(() => {
      this.#pumping = undefined;
    });
    return this.#pumping;
  }

  async #claimAndStart(): Promise<number> {
    let started = 0;
    while (this.#pumpRequested) {
      this.#pumpRequested = false;
      started += await this.#fillSlots();
    }
    return started;
  }

  async #fillSlots(): Promise<number> {
    let started = 0;
    for (;;) {
      const slots = this.#concurrency - this.#inFlight.size;
      if (slots <= 0 || this.#closing) return started;
      const now = this.#now();
      // An endpoint with attempts in flight here waits for them: at most perEndpoint at a time each.
      const busy = new Set<string>();
      const inFlight = new Map<string, number>();
      for (const { endpointId, appId } of this.#inFlight.values()) {
        busy.add(endpointId);
        inFlight.set(appId, (inFlight.get(appId) ?? 0) + 1);
      }
      const claimed = await claimDueDeliveries(this.#db, {
        now,
        leaseUntil: new Date(now.getTime() + this.#timeoutMs + LEASE_MARGIN_MS),
        slots,
        perEndpoint: this.#perEndpoint,
        perApp: this.#perApp,
        busy: [...busy],
        inFlight,
      });
      for (const delivery of claimed) {
        const attempt: Promise<void> = this.#attempt(delivery)
          .catch(this.#onError)
          .finally(() => {
            this.#inFlight.delete(attempt);
            // A freed slot takes the next due delivery at once rather than at the next round.
            if (!this.#closing) this.#pump().catch(this.#onError);
          });
        this.#inFlight.set(attempt, { endpointId: delivery.endpointId, appId: delivery.appId });
      }
      started += claimed.length;
      if (claimed.length < slots) return started;
    }
  }

  async #attempt(delivery: ClaimedDelivery): Promise<void> {
    const startedAt = this.#now();
    const secrets = [await this.#pii.decrypt(delivery.secretEnc, secretContext(delivery.endpointId))];
    if (
      delivery.previousSecretEnc !== null &&
      delivery.previousSecretExpiresAt !== null &&
      delivery.previousSecretExpiresAt > startedAt
    ) {
      secrets.push(
        await this.#pii.decrypt(delivery.previousSecretEnc, previousSecretContext(delivery.endpointId)),
      );
    }
    const target = await resolveTarget(delivery.url, this.#mode, this.#resolve);
    const result: AttemptResult = target.ok
      ? await post(
          target,
          webhookHeaders(secrets, delivery.messageId, startedAt, delivery.body),
          delivery.body,
          {
            timeoutMs: this.#timeoutMs,
            now: startedAt,
            stop: this.#stop.signal,
          },
        )
      : {
          responseStatus: null,
          error: `address_not_allowed: ${target.problem}`.slice(0, ERROR_TEXT_MAX),
          durationMs: 0,
        };
    // Interrupted by shutdown: not the receiver's failure; the lease hands the delivery on.
    if (this.#stop.signal.aborted && result.responseStatus === null) return;
    await this.#record(delivery, result, startedAt);
  }

  async #record(delivery: ClaimedDelivery, result: AttemptResult, startedAt: Date): Promise<void> {
    const at = this.#now();
    const status = result.responseStatus;
    if (status !== null && status >= 200 && status < 300) {
      await this.#db.transaction(async (tx) => {
        const recorded = await recordAttempt(tx, delivery, {
          ...result,
          status: 'delivered',
          nextAttemptAt: null,
          at,
        });
        if (recorded) await clearEndpointFailures(tx, delivery.endpointId);
      });
      return;
    }
    // Standard Webhooks "Delivery success and failure": 410 Gone asks the sender to stop for good.
    const gone = status === 410;
    const deadline = new Date(delivery.createdAt.getTime() + DELIVERY_RETRY_WINDOW_MS);
    const finished = gone || at >= deadline || delivery.attempt >= ATTEMPTS_MAX;
    const retryAt = new Date(
      at.getTime() + retryDelayMs(delivery.attempt, this.#random, result.retryAfterMs),
    );
    // The last try is at the end of the window rather than never.
    const nextAttemptAt = finished ? null : retryAt < deadline ? retryAt : deadline;
    await this.#db.transaction(async (tx) => {
      const recorded = await recordAttempt(tx, delivery, {
        ...result,
        status: finished ? 'failed' : 'pending',
        nextAttemptAt,
        at,
      });
      if (!recorded) return;
      let reason: DisabledReason | undefined = gone ? 'gone' : undefined;
      if (!gone) {
        const failingSince = await noteEndpointFailure(tx, delivery.endpointId, startedAt);
        if (failingSince && at.getTime() - failingSince.getTime() >= ENDPOINT_FAILING_MAX_MS)
          reason = 'failing';
      }
      if (!reason) return;
      const appId = await disableEndpoint(tx, delivery.endpointId, reason, at);
      if (appId === undefined) return;
      await emit(tx, at, {
        type: 'webhook.endpoint.disabled',
        subjectId: delivery.endpointId,
        payload: { appId, endpointId: delivery.endpointId, clientId: appId, reason },
      });
    });
  }
}

/** One POST; never follows redirects (3xx is a failure, Standard Webhooks), never reads the response body. */
function post(
  target: { url: URL; addresses: { address: string; family: number }[] },
  signature: Record<string, string>,
  body: string,
  options: { timeoutMs: number; now: Date; stop: AbortSignal },
): Promise<AttemptResult> {
  const { url } = target;
  const transport = url.protocol === 'https:' ? https : http;
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([timeout, options.stop]);
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: Omit<AttemptResult, 'durationMs'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...result, durationMs: Math.round(performance.now() - started) });
    };
    const request = transport.request(
      {
        method: 'POST',
        protocol: url.protocol,
        hostname: bareHost(url),
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        // One connection per attempt, so it can use no socket other than one to a checked address.
        agent: false,
        lookup: pinnedLookup(target.addresses),
        signal,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'apibank-webhooks/1',
          ...signature,
        },
      },
      (response) => {
        const retryAfter = response.headers['retry-after'];
        finish({
          responseStatus: response.statusCode ?? null,
          error: null,
          ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfterMsOf(retryAfter, options.now) }),
        });
        response.destroy();
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => {
      const text = timeout.aborted
        ? `timeout after ${options.timeoutMs} ms`
        : options.stop.aborted
          ? 'interrupted by shutdown'
          : (error.code ?? error.message);
      finish({ responseStatus: null, error: text.slice(0, ERROR_TEXT_MAX) });
    });
    request.end(body);
  });
}
