// The composition root: the one place that builds the parts and passes them down (STYLE.md §9).
import { join } from 'node:path';
import type { JWK } from 'jose';
import type Provider from 'oidc-provider';
import pino, { type Logger } from 'pino';
import type { BankIdentity } from './accounts/iban.ts';
import {
  registerAccountAdminRoutes,
  registerAccountPages,
  registerAccountRoutes,
  scopeOfAccess,
  scopeOfCustomer,
} from './accounts/routes.ts';
import { Accounts } from './accounts/service.ts';
import { registerAppAdminRoutes, registerAppRoutes } from './apps/routes.ts';
import { Apps } from './apps/service.ts';
import { auditProviderCalls, bodyFingerprint, registerAuditHook } from './audit/hooks.ts';
import { registerAuditRoutes } from './audit/routes.ts';
import { AuditLog } from './audit/service.ts';
import {
  type Config,
  ConfigError,
  DEFAULT_BANK,
  DEFAULT_CURRENCIES,
  type Mode,
  resolveAdminToken,
} from './config.ts';
import { customerSession, registerCustomerConsentRoutes } from './consents/customer-routes.ts';
import { registerConsentRoutes } from './consents/routes.ts';
import { Consents } from './consents/service.ts';
import { registerInteractionRoutes } from './customer-auth/routes.ts';
import { CustomerAuth } from './customer-auth/service.ts';
import { Customers } from './customers/service.ts';
import { type Db, openDb } from './db/db.ts';
import { migrate } from './db/migrate.ts';
import { registerDeveloperRoutes } from './developers/routes.ts';
import { Developers } from './developers/service.ts';
import { registerFraudRoutes } from './fraud/routes.ts';
import { FraudScreening } from './fraud/service.ts';
import { loadRateSource, type RateSource, sandboxRateSource } from './fx/rate-source.ts';
import { registerFxOperatorRoutes, registerFxRoutes } from './fx/routes.ts';
import { Fx } from './fx/service.ts';
import { createGateway } from './gateway/gateway.ts';
import { registerIdempotency } from './gateway/idempotency.ts';
import { Meter } from './gateway/metering.ts';
import { Plans } from './gateway/plans.ts';
import { MemoryRateLimiter, type RateLimiter, RedisRateLimiter } from './gateway/rate-limit.ts';
import { registerPlanRoutes } from './gateway/routes.ts';
import { type App, createHttpServer, logSerializers, scoped } from './http/app.ts';
import { requireBearerToken } from './http/auth.ts';
import { registerConventions } from './http/conventions.ts';
import { registerHealth } from './http/health.ts';
import { auditGauges, registerMetrics } from './http/metrics.ts';
import { registerOpenApi } from './http/openapi.ts';
import { pruneIdempotencyKeys } from './idempotency.ts';
import { loadScreeningLists, Screener, ScreeningListError } from './kyc/screening.ts';
import { BankLedgerAccounts } from './ledger/bank-accounts.ts';
import { registerLedgerRoutes } from './ledger/routes.ts';
import { Ledger } from './ledger/service.ts';
import { registerLoyaltyOperatorRoutes, registerPointsRoutes } from './loyalty/routes.ts';
import { Loyalty } from './loyalty/service.ts';
import { registerMandateRoutes } from './mandates/routes.ts';
import { Mandates } from './mandates/service.ts';
import { pruneOAuthPayloads } from './oauth/adapter.ts';
import { loadOAuthKeys, type OAuthKeys, publicJwks } from './oauth/keys.ts';
import { apiResource, createProvider } from './oauth/provider.ts';
import { MemoryReplayGuard, RedisReplayGuard, type ReplayGuard } from './oauth/replay.ts';
import { createResourceServer } from './oauth/resource-server.ts';
import { registerOAuthRoutes } from './oauth/routes.ts';
import {
  registerKycReviewRoutes,
  registerOnboardingPages,
  registerOnboardingRoutes,
} from './onboarding/routes.ts';
import { Onboarding } from './onboarding/service.ts';
import { PaymentOrders } from './payments/orders.ts';
import { registerPaymentOperatorRoutes, registerPaymentRoutes } from './payments/routes.ts';
import { Payments } from './payments/service.ts';
import { registerPayoutRoutes } from './payouts/routes.ts';
import { Payouts } from './payouts/service.ts';
import { loadMasterKeys } from './pii/master-keys.ts';
import { Pii } from './pii/pii.ts';
import { seedSandbox } from './sandbox/seed.ts';
import { BG_PREFIX, registerBerlinGroupAisRoutes } from './standards/berlin-group/ais.ts';
import { bgNotFound } from './standards/berlin-group/errors.ts';
import { registerBerlinGroupPisRoutes } from './standards/berlin-group/pis.ts';
import { registerUkObAispRoutes } from './standards/uk-ob/aisp.ts';
import { registerUkObCbpiiRoutes } from './standards/uk-ob/cbpii.ts';
import { OB_PREFIX, obNotFound } from './standards/uk-ob/errors.ts';
import { registerUkObEventsRoutes } from './standards/uk-ob/events.ts';
import { DEFAULT_TRUST_ANCHOR } from './standards/uk-ob/jws.ts';
import { registerUkObPispRoutes } from './standards/uk-ob/pisp.ts';
import { registerUkObPispInternationalRoutes } from './standards/uk-ob/pisp-international.ts';
import { registerUkObPispOrderRoutes } from './standards/uk-ob/pisp-orders.ts';
import { registerUkObVrpRoutes } from './standards/uk-ob/vrp.ts';
import { registerWebhookRoutes } from './webhooks/routes.ts';
import { WebhookDispatcher, Webhooks } from './webhooks/service.ts';

export interface AppParts {
  readonly db: Db;
  readonly adminToken: string;
  /** The bearer token `/metrics` asks of scrapers (APIBANK_METRICS_TOKEN); unset: open. */
  readonly metricsToken?: string;
  /** Default: sandbox. */
  readonly mode?: Mode;
  /** Browser origins allowed by CORS; default: none. */
  readonly corsOrigins?: readonly string[];
  readonly trustedProxies?: readonly string[];
  /** Rate-limit counters; default: in memory. */
  readonly limiter?: RateLimiter;
  /** Where DPoP proof ids are remembered; default: in memory. */
  readonly replay?: ReplayGuard;
  /** The authorization server; without it the app serves no OAuth endpoints (tests of other parts). */
  readonly oauth?: { readonly issuer: string; readonly keys: OAuthKeys };
  /** Field encryption: personal data, app secrets. */
  readonly pii: Pii;
  /** Sanctions and PEP screening for account opening; default: screens against nothing. */
  readonly screener?: Screener;
  /** Default: DEFAULT_BANK. */
  readonly bank?: BankIdentity;
  /** Currencies accounts open in; default: DEFAULT_CURRENCIES. */
  readonly currencies?: readonly string[];
  /** Where FX mid rates come from; default: the sandbox's invented rates. */
  readonly rates?: RateSource;
  /** The UK Open Banking trust anchor signatures name (`tan`); default: openbanking.org.uk. */
  readonly obTrustAnchor?: string;
  readonly logger?: Logger;
  readonly now?: () => Date;
}

/** The HTTP application over an open, migrated database. Tests build it directly and call `inject()`. */
export interface BuiltApp {
  readonly app: App;
  readonly ledger: Ledger;
  readonly apps: Apps;
  readonly provider?: Provider;
  /** The onRequest hook factory for routes that need an access token. */
  readonly requireAccess?: ReturnType<typeof createResourceServer>;
  readonly customerAuth?: CustomerAuth;
  readonly consents?: Consents;
  readonly customers?: Customers;
  readonly accounts?: Accounts;
  readonly onboarding?: Onboarding;
  readonly payments?: Payments;
  readonly fx?: Fx;
  readonly fraud?: FraudScreening;
  readonly orders?: PaymentOrders;
  readonly payouts?: Payouts;
  readonly mandates?: Mandates;
  readonly loyalty?: Loyalty;
  readonly audit?: AuditLog;
  readonly gateway?: ReturnType<typeof createGateway>;
  readonly plans: Plans;
  readonly meter: Meter;
  readonly webhooks: Webhooks;
}

export function buildApp(parts: AppParts): BuiltApp {
  const clock = parts.now && { now: parts.now };
  const ledger = new Ledger({ db: parts.db, ...clock });
  const developers = new Developers({ db: parts.db, ...clock });
  const plans = new Plans({ db: parts.db, ...clock });
  // New apps start on the default plan, so a developer can call the sandbox at once.
  const pii = parts.pii;
  const apps = new Apps({
    db: parts.db,
    pii,
    mode: parts.mode ?? 'sandbox',
    ...clock,
    onCreate: (created) => plans.subscribeToDefault(created.id),
  });
  const app = createHttpServer({
    ...(parts.logger && { logger: parts.logger }),
    ...(parts.trustedProxies && { trustedProxies: parts.trustedProxies }),
  });
  registerOpenApi(app, parts.oauth ? { publicUrl: parts.oauth.issuer } : {});
  registerConventions(app, { production: parts.mode === 'production', corsOrigins: parts.corsOrigins ?? [] });
  const metrics = registerMetrics(app, parts.db, parts.metricsToken ? { token: parts.metricsToken } : {});
  registerIdempotency(app, parts.db, pii);
  // Routes are registered inside child contexts, which load after the OpenAPI plugin, so it sees them all.
  scoped(app, (scope) => registerHealth(scope, parts.db));
  // The operator API lives in its own encapsulated context: its auth hook never reaches health or metrics.
  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(parts.adminToken));
    registerLedgerRoutes(operator, ledger);
  });
  scoped(app, (scope) => registerDeveloperRoutes(scope, developers));
  registerAppRoutes(app, apps, developers);
  const webhooks = new Webhooks({ db: parts.db, pii, mode: parts.mode ?? 'sandbox', apps, ...clock });
  scoped(app, (scope) => registerWebhookRoutes(scope, webhooks, developers));
  registerAppAdminRoutes(app, apps, parts.adminToken);
  const meter = new Meter({ db: parts.db });
  registerPlanRoutes(app, { plans, apps, developers, meter }, parts.adminToken);
  app.addHook('onResponse', (request, reply, done) => {
    if (request.product && request.access) {
      const { clientId } = request.access;
      meter.record(clientId, request.product, reply.statusCode, reply.elapsedTime, new Date());
      metrics.apiCall(clientId, request.product, reply.statusCode, reply.elapsedTime / 1000);
    }
    done();
  });
  if (!parts.oauth) return { app, ledger, apps, plans, meter, webhooks };
  const mode = parts.mode ?? 'sandbox';
  const customerAuth = new CustomerAuth({ db: parts.db, mode, pii, ...clock });
  const consents = new Consents({ db: parts.db, pii, ...clock });
  const customers = new Customers({ db: parts.db, pii, ...clock });
  const accounts = new Accounts({
    db: parts.db,
    ledger,
    customers,
    bank: parts.bank ?? DEFAULT_BANK,
    currencies: parts.currencies ?? DEFAULT_CURRENCIES,
    ...clock,
  });
  const fraud = new FraudScreening({ db: parts.db, ...clock });
  const bankAccounts = new BankLedgerAccounts(parts.db, ledger);
  const fx = new Fx({
    db: parts.db,
    ledger,
    bankAccounts,
    accounts,
    customers,
    pii,
    rates: parts.rates ?? sandboxRateSource(),
    ...clock,
  });
  const loyalty = new Loyalty({ db: parts.db, ledger, bankAccounts, ...clock });
  const payments = new Payments({
    db: parts.db,
    fraud,
    fx,
    loyalty,
    secondFactor: customerAuth,
    ledger,
    bankAccounts,
    accounts,
    consents,
    pii,
    ...clock,
  });
  const orders = new PaymentOrders({ db: parts.db, payments, consents, pii, ...clock });
  const payouts = new Payouts({
    db: parts.db,
    ledger,
    bankAccounts,
    accounts,
    customers,
    pii,
    ...clock,
  });
  const mandates = new Mandates({ db: parts.db, consents, payments, accounts, ledger, loyalty, ...clock });
  const onboarding = new Onboarding({
    db: parts.db,
    pii,
    customers,
    accounts,
    logins: customerAuth,
    screener: parts.screener ?? new Screener([]),
    ...clock,
  });
  const provider = createProvider({
    issuer: parts.oauth.issuer,
    mode,
    db: parts.db,
    clients: apps,
    keys: parts.oauth.keys,
    customers: {
      find: (id) => customerAuth.find(id),
      kycVerified: async (id) => (await customers.find(id))?.status === 'active',
    },
    consents,
    onError: (error, doing) => parts.logger?.error({ err: error }, `authorization server: ${doing} failed`),
  });
  const audit = new AuditLog({ db: parts.db, signingKey: parts.oauth.keys.auditSigningKey });
  const fingerprint = bodyFingerprint(String(parts.oauth.keys.auditSigningKey.d));
  registerAuditHook(app, audit, fingerprint);
  // Before the provider's request handler is built: Koa composes its middleware when callback() is called.
  provider.use(auditProviderCalls(audit, fingerprint) as never);
  registerOAuthRoutes(app, provider);
  registerInteractionRoutes(app, provider, { auth: customerAuth, consents, accounts }, mode);
  const requireAccess = createResourceServer({
    issuer: parts.oauth.issuer,
    audience: apiResource(parts.oauth.issuer),
    jwks: publicJwks(parts.oauth.keys),
    mode,
    apps,
    consents,
    ...(parts.replay && { replay: parts.replay }),
    ...clock,
  });
  const gateway = createGateway({
    requireAccess,
    plans,
    limiter: parts.limiter ?? new MemoryRateLimiter(),
    ...clock,
    onRejected: (reason) => metrics.rejections.inc({ reason }),
  });
  scoped(app, (scope) => registerConsentRoutes(scope, consents, gateway));
  registerCustomerConsentRoutes(app, { auth: customerAuth, consents, apps }, mode);
  // UK Open Banking v4.0 over the same consents and accounts (src/standards/uk-ob/).
  registerUkObAispRoutes(
    app,
    { consents, accounts, orders, customers, mandates, payments, publicUrl: parts.oauth.issuer },
    gateway,
  );
  registerUkObCbpiiRoutes(app, { consents, accounts, payments, publicUrl: parts.oauth.issuer }, gateway);
  // The payment APIs sign their answers and check the apps' signatures (jws.ts). The Open Banking signing
  // profile asks for PS256; ES256 where the keys file holds no RSA key.
  const obSigning = {
    signingKey: (parts.oauth.keys.signingKeys.find((key) => key.alg === 'PS256') ??
      parts.oauth.keys.signingKeys[0]) as JWK,
    publicUrl: parts.oauth.issuer,
    apps,
    trustAnchor: parts.obTrustAnchor ?? DEFAULT_TRUST_ANCHOR,
    mode: parts.mode ?? 'sandbox',
  };
  registerUkObPispRoutes(app, { db: parts.db, consents, payments, accounts, ...obSigning }, gateway);
  registerUkObPispInternationalRoutes(
    app,
    { db: parts.db, consents, payments, accounts, fx, ...obSigning },
    gateway,
  );
  // Its scheduled payments and standing orders, onto the bank's payment orders.
  registerUkObPispOrderRoutes(app, { db: parts.db, consents, orders, payments, ...obSigning }, gateway);
  // Its domestic variable recurring payments, onto the bank's mandates.
  registerUkObVrpRoutes(app, { db: parts.db, consents, mandates, payments, accounts, ...obSigning }, gateway);
  registerUkObEventsRoutes(app, { db: parts.db, ...obSigning }, gateway);
  // Berlin Group NextGenPSD2 1.3.9 likewise (src/standards/berlin-group/).
  registerBerlinGroupAisRoutes(
    app,
    { db: parts.db, consents, accounts, apps, publicUrl: parts.oauth.issuer },
    gateway,
  );
  registerBerlinGroupPisRoutes(
    app,
    { db: parts.db, consents, payments, accounts, apps, publicUrl: parts.oauth.issuer },
    gateway,
  );
  // A path or method the facades do not have is answered in their own forms too, not as a problem.
  bgNotFound(app, BG_PREFIX);
  obNotFound(app, OB_PREFIX);
  registerPayoutRoutes(app, { payouts, auth: customerAuth });
  scoped(app, (scope) => {
    registerOnboardingRoutes(scope, { onboarding, accounts }, gateway);
    registerPaymentRoutes(scope, { payments, orders, accounts, auth: customerAuth }, gateway);
    registerFxRoutes(scope, { fx, payments, auth: customerAuth }, gateway);
    registerMandateRoutes(scope, { mandates, auth: customerAuth }, gateway);
    registerAccountRoutes(scope, accounts, {
      prefix: '/v1/accounts',
      onRequest: gateway('accounts', 'accounts'),
      scopeOf: scopeOfAccess,
      payees: payments,
    });
    registerAccountRoutes(scope, accounts, {
      prefix: '/v1/me/accounts',
      onRequest: [customerSession(customerAuth)],
      scopeOf: (request) => scopeOfCustomer(request.customerId as string),
      payees: payments,
    });
    registerPointsRoutes(
      scope,
      { loyalty, accounts },
      { prefix: '/v1/accounts', onRequest: gateway('accounts', 'accounts'), scopeOf: scopeOfAccess },
    );
    registerPointsRoutes(
      scope,
      { loyalty, accounts },
      {
        prefix: '/v1/me/accounts',
        onRequest: [customerSession(customerAuth)],
        scopeOf: (request) => scopeOfCustomer(request.customerId as string),
      },
    );
  });
  registerOnboardingPages(app, { onboarding, accounts, logins: customerAuth });
  registerKycReviewRoutes(app, onboarding, parts.adminToken);
  registerAccountAdminRoutes(app, accounts, parts.adminToken);
  registerAccountPages(app, accounts, customerAuth);
  registerPaymentOperatorRoutes(app, payments, { adminToken: parts.adminToken, sandbox: mode === 'sandbox' });
  registerFxOperatorRoutes(app, fx, { adminToken: parts.adminToken, sandbox: mode === 'sandbox' });
  registerAuditRoutes(app, audit, parts.adminToken);
  registerFraudRoutes(app, fraud, parts.adminToken);
  registerLoyaltyOperatorRoutes(app, loyalty, parts.adminToken);
  auditGauges(metrics.registry, audit);
  return {
    app,
    ledger,
    apps,
    plans,
    meter,
    webhooks,
    provider,
    requireAccess,
    customerAuth,
    consents,
    customers,
    accounts,
    onboarding,
    payments,
    fx,
    fraud,
    orders,
    payouts,
    mandates,
    loyalty,
    audit,
    gateway,
  };
}

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    // Secrets never reach a log line, even if a future serializer starts logging headers or bodies.
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', '*.password', '*.token', '*.secret'],
      censor: '[redacted]',
    },
    serializers: logSerializers,
  });
}

export function openConfiguredDb(config: Config): Promise<Db> {
  return config.databaseUrl
    ? openDb({ url: config.databaseUrl, poolMax: config.databasePoolMax })
    : openDb({ dataDir: join(config.dataDir, 'pglite') });
}

// The embedded start's population besides the documented customers: enough to browse, quick to create.
const SANDBOX_GENERATED_CUSTOMERS = 20;
const SWEEP_INTERVAL_MS = 1000;
const PRUNE_INTERVAL_MS = 60_000;
const AUDIT_FLUSH_INTERVAL_MS = 200;
const METER_FLUSH_INTERVAL_MS = 10_000;
// The scheme settles in cycles; the sandbox runs one a minute (operators can run one at any time).
const SETTLEMENT_CYCLE_INTERVAL_MS = 60_000;
const PAYMENT_RECOVERY_INTERVAL_MS = 10_000;
// An approved payout batch starts within about a second; a batch whose process died is taken over once
// its lease lapses (payouts/service.ts).
const PAYOUT_EXECUTION_INTERVAL_MS = 1000;
// Orders fall due by date: checking every minute pays each on its day, soon after midnight (UTC).
const SCHEDULER_INTERVAL_MS = 60_000;
const AUDIT_CHECKPOINT_INTERVAL_MS = 60_000;
// Webhooks leave within about a second of their event's commit.
const WEBHOOK_DISPATCH_INTERVAL_MS = 1000;

/** The sanctions and PEP lists the settings name; one that cannot be read or parsed is a configuration error. */
async function screeningListsOf(config: Config) {
  try {
    return await loadScreeningLists(config.screeningLists);
  } catch (error) {
    if (error instanceof ScreeningListError)
      throw new ConfigError([`APIBANK_SCREENING_LISTS: ${error.message}`]);
    throw error;
  }
}

/** `apibank serve`: migrate, listen, run background work, and shut down cleanly on SIGTERM or SIGINT. */
export async function serve(config: Config, logger: Logger): Promise<void> {
  const admin = resolveAdminToken(config);
  // Before the database opens: a wrong rates setting stops the start at once.
  const rates = loadRateSource(config.fxRates, config.mode);
  const db = await openConfiguredDb(config);
  const applied = await migrate(db);
  if (applied.length > 0) logger.info({ migrations: applied }, 'applied migrations');
  const oauth = { issuer: config.publicUrl, keys: await loadOAuthKeys(config.oauthKeysFile, config.mode) };
  const pii = await Pii.open(db, loadMasterKeys(config.piiKeysFile, config.mode));
  const limiter = config.redisUrl
    ? new RedisRateLimiter(config.redisUrl, config.rateLimitOnRedisFailure, (error) =>
        logger.warn(
          { err: error },
          `rate limiter: Redis unreachable, failing ${config.rateLimitOnRedisFailure}`,
        ),
      )
    : new MemoryRateLimiter();
  logger.info(
    config.redisUrl
      ? `rate limits shared through Redis; if Redis is unreachable calls are ${config.rateLimitOnRedisFailure === 'open' ? 'let through (fail open)' : 'refused (fail closed)'}`
      : 'rate limits kept in memory (per process); set REDIS_URL to share them',
  );
  const replay = config.redisUrl
    ? new RedisReplayGuard(config.redisUrl, config.rateLimitOnRedisFailure, (error) =>
        logger.warn(
          { err: error },
          `DPoP replay checks: Redis unreachable, failing ${config.rateLimitOnRedisFailure}`,
        ),
      )
    : new MemoryReplayGuard();
  const { app, ledger, onboarding, payments, fx, orders, mandates, payouts, audit, meter } = buildApp({
    limiter,
    replay,
    corsOrigins: config.corsOrigins,
    trustedProxies: config.trustedProxies,
    db,
    adminToken: admin.token,
    ...(config.metricsToken && { metricsToken: config.metricsToken }),
    logger,
    mode: config.mode,
    oauth,
    pii,
    screener: new Screener(await screeningListsOf(config)),
    bank: config.bank,
    currencies: config.currencies,
    rates,
    obTrustAnchor: config.obTrustAnchor,
  });
  if (
    config.mode === 'sandbox' &&
    onboarding &&
    (await seedSandbox(db, onboarding, { customers: SANDBOX_GENERATED_CUSTOMERS, seed: 1, now: new Date() }))
  ) {
    logger.info('seeded sandbox customers, accounts and a year of history (see README: sandbox data)');
  }

  const webhookDispatcher = new WebhookDispatcher({
    db,
    pii,
    mode: config.mode,
    onError: (error) => logger.error({ err: error }, 'webhook delivery failed'),
  });
  // Background work. Each runs alone (no overlap with itself) and is safe in several processes at once.
  const every = (intervalMs: number, name: string, work: () => Promise<unknown>) => {
    let running = false;
    const timer = setInterval(async () => {
      if (running) return;
      running = true;
      try {
        await work();
      } catch (error) {
        logger.error({ err: error }, `${name} failed`);
      } finally {
        running = false;
      }
    }, intervalMs);
    timer.unref();
    return timer;
  };
  // Each signed checkpoint also goes to the log, outside the database: `apibank audit verify LOGFILE` checks
  // the chain against them, which a rebuilt or shortened chain cannot match.
  const logCheckpoint = (signed: { seq: number; hash: string; jws: string } | undefined) => {
    if (signed) logger.info({ auditCheckpoint: signed }, 'audit checkpoint signed');
  };
  const timers = [
    every(SWEEP_INTERVAL_MS, 'expiring pending transfers', () => ledger.expireDue()),
    every(PRUNE_INTERVAL_MS, 'pruning idempotency keys', () => pruneIdempotencyKeys(db, new Date())),
    every(PRUNE_INTERVAL_MS, 'pruning expired OAuth records', () => pruneOAuthPayloads(db)),
    every(AUDIT_FLUSH_INTERVAL_MS, 'writing audit records', async () => audit?.flush()),
    every(METER_FLUSH_INTERVAL_MS, 'writing usage', () => meter.flush()),
    every(WEBHOOK_DISPATCH_INTERVAL_MS, 'dispatching webhooks', () => webhookDispatcher.dispatchOnce()),
    every(PRUNE_INTERVAL_MS, 'pruning the webhook delivery log', () => webhookDispatcher.prune()),
    every(SETTLEMENT_CYCLE_INTERVAL_MS, 'settling outbound payments', async () => {
      const cycle = await payments?.settleCycle();
      // Money the customer has paid waits in clearing: an operator must hear of it (an alert on this line).
      if (cycle && cycle.deferred > 0)
        logger.warn({ deferred: cycle.deferred, reasons: cycle.deferredFor }, 'outbound payments deferred');
    }),
    every(PAYOUT_EXECUTION_INTERVAL_MS, 'executing payout batches', async () => payouts?.runDue()),
    every(SETTLEMENT_CYCLE_INTERVAL_MS, 'settling payouts to other banks', async () =>
      payouts?.settleCycle(),
    ),
    every(PAYMENT_RECOVERY_INTERVAL_MS, 'recovering interrupted payments', async () => payments?.recover()),
    every(PAYMENT_RECOVERY_INTERVAL_MS, 'recovering interrupted FX conversions', async () => fx?.recover()),
    every(PRUNE_INTERVAL_MS, 'pruning unused FX quotes', async () => fx?.prune()),
    every(PAYMENT_RECOVERY_INTERVAL_MS, 'recovering interrupted mandate charges and refunds', async () =>
      mandates?.recover(),
    ),
    every(SCHEDULER_INTERVAL_MS, 'paying scheduled payments and standing orders', async () =>
      orders?.runDue(),
    ),
    every(AUDIT_CHECKPOINT_INTERVAL_MS, 'signing an audit checkpoint', async () =>
      logCheckpoint(await audit?.checkpoint(new Date())),
    ),
  ];

  // Everything that keeps the process alive, stopped in order: on a signal, or when nothing could listen.
  const release = async () => {
    for (const timer of timers) clearInterval(timer);
    // Attempts in flight are abandoned to their leases: another process (or this one, restarted) resends them.
    await webhookDispatcher.close();
    await app.close();
    // The calls just finished are audited, and the head signed, before the database closes.
    await audit?.flush();
    logCheckpoint(await audit?.checkpoint(new Date()));
    await meter.flush();
    await limiter.close();
    await replay.close();
    await db.close();
  };
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    // The port is taken or the address is not this machine's: a process that serves nothing must not stay
    // alive looking healthy. The caller reports the error and exits.
    await release();
    throw error;
  }
  const where = config.databaseUrl ? 'PostgreSQL' : `embedded PGlite in ${join(config.dataDir, 'pglite')}`;
  logger.info(`apibank ${config.mode} listening on http://${config.host}:${config.port} (${where})`);
  if (admin.file) logger.info(`operator token: ${admin.file} (send it as Authorization: Bearer <token>)`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    await release();
    logger.info('stopped');
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
