// Gateway overhead benchmark: `node bench/gateway.ts` (BENCH_SECONDS=10 by default).
//
// What the gateway costs a call: the same trivial route served by a plain Fastify instance (no pipeline at
// all) and by the full app behind `gateway('consents', 'payments')`, where a call pays for the access-token
// check, the plan and product check, the rate-limit counters, usage metering, the metrics and the audit
// record. The figure is the ratio of their throughputs. Two more rows, for information, split that cost: the same route on the
// full app without the gateway (the hooks every route pays: request id, metrics, audit), and the gateway
// with a DPoP-bound token (a proof to verify on every call).
//
// The machine's speed drifts by more than the pipeline costs, minute to minute (bench/support.ts, `machine()`),
// so the bare route, the full pipeline and the hooks-only row are measured in turns: each warms up, then
// ROUNDS rounds give each SECONDS / ROUNDS seconds, in a rotating order, and each row pools its rounds. A
// drift then slows every row alike instead of whichever ran during it; the report shows each round's ratio
// too, so the spread is in view.
//
// The load generator and both servers run in this one process, as bench/oauth.ts's latency part does,
// so the client's CPU, the same for every row, dilutes the difference: the ratio shown is kinder than the
// server-side ratio would be on its own. The full app writes its audit records and usage tallies to local
// PostgreSQL, as in production; where none answers, to an in-memory PGlite on this same event loop, which
// costs the pipeline more.
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import * as client from 'openid-client';
import { Pool } from 'undici';
import type { BuiltApp } from '../src/main.ts';
import {
  type Call,
  type Credentials,
  discover,
  dpopBound,
  format,
  inProcessApp,
  inTurns,
  listen,
  type Measured,
  machine,
  ms,
  onPostgres,
  printTable,
  registerApp,
  roundsReport,
  SECONDS,
  signUpDeveloper,
  TurnTally,
  truncate,
  WARMUP_SECONDS,
} from './support.ts';

/** Concurrent clients, each with its own connection and one request in flight. */
const CONNECTIONS = 32;
const RATIO_TARGET = 0.7;
/** Turns each of the bare, Bearer and hooks-only rows takes in the measured SECONDS. */
const ROUNDS = 5;
// As `serve()` does (src/main.ts): the audit buffer is written every 200 ms, the usage tallies every 10 s.
const AUDIT_FLUSH_INTERVAL_MS = 200;
const METER_FLUSH_INTERVAL_MS = 10_000;
const ADMIN_TOKEN = `bench-gateway-${randomUUID()}`;
const EXPECTED_BODY = JSON.stringify({ ok: true });
// A DPoP proof is accepted within 60 s of its `iat` (src/oauth/resource-server.ts). The proofs are signed
// before the run, so their client cost stays out of the figure; past this length they would go stale.
const DPOP_MAX_RUN_SECONDS = 45;

type ScenarioName = 'bare' | 'bearer' | 'hooks' | 'dpop';

/** `errors` counts non-200 answers, unexpected bodies and network failures. */
interface Scenario extends Measured {
  readonly name: ScenarioName;
  readonly label: string;
  readonly route: string;
  readonly requestsPerSecond: number;
  /** Answers of any kind over the whole run, warm-up included: each one is an audited call on the full app. */
  readonly answered: number;
  /**
   * This process's CPU time (user and system) over the whole run, per answer: client and server together,
   * so the difference between two rows is what the server did more. Unlike requests per second, it does not
   * move when other processes take the machine's cores.
   */
  readonly cpuUsPerCall: number;
}

async function main(databaseUrl: string | undefined): Promise<void> {
  console.log(
    `gateway overhead benchmark: ${SECONDS} s per route after ${WARMUP_SECONDS} s warm-up, ` +
      `${CONNECTIONS} connections; ${await machine()}; in process: client and servers share one event loop, so ` +
      `client CPU competes with the server; audit and usage written to ${databaseUrl ? 'PostgreSQL' : 'an in-memory PGlite in this process'}`,
  );

  // The baseline: Fastify with nothing but the route. No request-id hook, no metrics, no audit, no gateway.
  const bare = Fastify();
  bare.get('/bench/bare', async () => ({ ok: true }));
  const barePort = await listen(bare);

  // The full app on an in-memory PGlite.
  const { db, built, port, issuer } = await inProcessApp(ADMIN_TOKEN, databaseUrl);
  const { gateway, audit, meter } = built;
  if (!gateway || !audit) throw new Error('buildApp made no gateway or audit log although oauth was given');
  // Routes must exist before `listen`. The product must be in the app's plan; the scope in its token.
  built.app.get('/bench/gateway', { onRequest: gateway('consents', 'payments') }, async () => ({ ok: true }));
  built.app.get('/bench/hooks', async () => ({ ok: true }));
  await listen(built.app, port);

  // In production `serve()` writes the audit buffer and the usage tallies on timers; built in process,
  // nobody would. Writing them here keeps their cost (hashing, a PGlite transaction per batch, all on this
  // event loop) inside the measurement, as it is there.
  const flushers = [
    new Periodic('audit flush', AUDIT_FLUSH_INTERVAL_MS, () => audit.flush()),
    new Periodic('usage flush', METER_FLUSH_INTERVAL_MS, () => meter.flush()),
  ];
  const scenarios: Scenario[] = [];
  // Records written while the full app was under load, to set against the calls it answered. Counted
  // around the runs only, since setup and token requests are audited too.
  let audited = 0;
  const withAudit = async <T>(runs: () => Promise<T>) => {
    await audit.flush();
    const before = audit.length;
    // A run ends when every answer has arrived, and a call is recorded (onResponse) as its answer leaves.
    const result = await runs();
    await audit.flush();
    audited += audit.length - before;
    return result;
  };
  let roundRatios: number[] = [];
  try {
    const app = await setUpApp(built);

    // Every row sends the same request, token included, so the client's share of the CPU is the same in
    // each and the difference is the server's: a bare server ignores the header, the gateway checks it.
    const bearer = await tokenFor(issuer, app);
    const sameRequest = () => ({ authorization: `Bearer ${bearer}` });
    const inTurns = await withAudit(() =>
      runInTurns(
        [
          {
            name: 'bare',
            label: 'bare Fastify',
            origin: `http://127.0.0.1:${barePort}`,
            path: '/bench/bare',
          },
          { name: 'bearer', label: 'full pipeline, Bearer', origin: issuer, path: '/bench/gateway' },
          { name: 'hooks', label: 'app hooks only (info)', origin: issuer, path: '/bench/hooks' },
        ],
        sameRequest,
        ROUNDS,
      ),
    );
    scenarios.push(...inTurns.scenarios);
    roundRatios = inTurns.roundRatios;

    if (WARMUP_SECONDS + SECONDS <= DPOP_MAX_RUN_SECONDS) {
      // Enough proofs for the Bearer rate over the whole run and a margin: DPoP is never faster.
      const wanted = Math.ceil((scenarios[1]?.requestsPerSecond ?? 0) * (WARMUP_SECONDS + SECONDS) * 1.2);
      const dpop = await dpopCredentials(issuer, app, `${issuer}/bench/gateway`, wanted + CONNECTIONS);
      scenarios.push(
        await withAudit(() =>
          run(
            { name: 'dpop', label: 'full pipeline, DPoP (info)', origin: issuer, path: '/bench/gateway' },
            async () => ({ authorization: `DPoP ${dpop.token}`, dpop: await dpop.nextProof() }),
          ),
        ),
      );
    } else {
      console.log(`DPoP: skipped, runs longer than ${DPOP_MAX_RUN_SECONDS} s would send stale proofs`);
    }

    // Proof the pipeline ran: every answer from the full app (whatever its status) left one audit record,
    // and every call through the gateway was metered. Setup made no gateway call, so all usage is ours.
    for (const flusher of flushers) await flusher.stop();
    await meter.flush();
    const usage = await meter.usage(app.clientId, new Date(0), new Date(Date.now() + 3_600_000));
    const answered = (names: readonly ScenarioName[]) =>
      scenarios.filter((s) => names.includes(s.name)).reduce((sum, s) => sum + s.answered, 0);
    printReport(scenarios, roundRatios, {
      audited,
      served: answered(['bearer', 'hooks', 'dpop']),
      dropped: audit.dropped,
      metered: usage.reduce((sum, product) => sum + product.calls, 0),
      gatewayCalls: answered(['bearer', 'dpop']),
      flushErrors: flushers.reduce((sum, flusher) => sum + flusher.errors, 0),
    });
  } finally {
    for (const flusher of flushers) await flusher.stop();
    await built.app.close();
    await bare.close();
    await db.close();
  }
}

// ---------------------------------------------------------------------------------------------- setup

/**
 * A developer, an app allowed scope `payments`, and a plan generous enough that the limiter counts every
 * call but never refuses one: the default plan allows 50 calls a second. The plan API caps the rates at
 * 100,000 a second and 6,000,000 a minute, far above what one process serves here.
 */
async function setUpApp(built: BuiltApp): Promise<Credentials> {
  // By inject, not over the socket: setup is not what is measured, and it needs no port of its own.
  const call: Call = async (method, url, payload, token) => {
    const response = await built.app.inject({
      method,
      url,
      payload: JSON.stringify(payload),
      headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
    });
    if (response.statusCode >= 300)
      throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`);
    return response.json<Record<string, unknown>>();
  };
  await call(
    'PUT',
    '/v1/admin/plans/bench',
    {
      name: 'Bench',
      productIds: ['consents'],
      ratePerSecond: 100_000,
      ratePerMinute: 6_000_000,
      dailyQuota: 1_000_000_000,
      requiresApproval: false,
    },
    ADMIN_TOKEN,
  );
  const developer = await signUpDeveloper(call);
  const app = await registerApp(call, developer, 'bench gateway', 'payments');
  const subscription = await call('PUT', `/v1/apps/${app.id}/subscription`, { planId: 'bench' }, developer);
  if (subscription.status !== 'active') throw new Error(`subscription: ${JSON.stringify(subscription)}`);
  return app;
}

/** A fresh client-credentials token (they live 5 minutes): taken just before the run that uses it. */
async function tokenFor(issuer: string, app: Credentials): Promise<string> {
  const config = await discover(issuer, app);
  return (await client.clientCredentialsGrant(config, { scope: 'payments' })).access_token;
}

/**
 * A DPoP-bound token and `count` proofs for GET `htu`. They are signed now, before the clock starts:
 * signing is the client's cost, and in this one process it would otherwise be charged to the server.
 * Should they run out, the rest are signed during the run.
 */
async function dpopCredentials(issuer: string, app: Credentials, htu: string, count: number) {
  const { token, sign } = await dpopBound(await discover(issuer, app), 'payments', htu);
  const started = performance.now();
  const proofs: string[] = [];
  // In chunks: a few hundred thousand signatures started at once would hold as many promises.
  for (let i = 0; i < count; i += 1000) {
    proofs.push(...(await Promise.all(Array.from({ length: Math.min(1000, count - i) }, sign))));
  }
  console.log(
    `signed ${format(count)} DPoP proofs in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  let next = 0;
  return {
    token,
    /** The next unused proof; past the signed ones, signed on the spot (and then charged to the run). */
    nextProof: (): string | Promise<string> => proofs[next++] ?? sign(),
  };
}

/** Runs `work` every `intervalMs`, never two at once, as `serve()` runs its background work. */
class Periodic {
  errors = 0;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;

  constructor(name: string, intervalMs: number, work: () => Promise<unknown>) {
    this.#timer = setInterval(() => {
      if (this.#running) return;
      this.#running = work()
        .then(
          () => {},
          (error: unknown) => {
            this.errors++;
            if (this.errors === 1) console.log(`${name} failed: ${String(error)}`);
          },
        )
        .finally(() => {
          this.#running = undefined;
        });
    }, intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}

// ---------------------------------------------------------------------------------------------- load

interface Route {
  readonly name: ScenarioName;
  readonly label: string;
  readonly origin: string;
  readonly path: string;
}
type Headers = () => Record<string, string> | Promise<Record<string, string>>;

/** What a row gathered so far: its rounds add up. */
class Tally {
  readonly route: Route;
  readonly headers: Headers;
  readonly turns = new TurnTally();
  answered = 0;
  cpuUs = 0;
  // No pipelining: each client waits for its answer, as a real caller would.
  readonly pool: Pool;

  constructor(route: Route, headers: Headers) {
    this.route = route;
    this.headers = headers;
    this.pool = new Pool(route.origin, { connections: CONNECTIONS, pipelining: 1 });
  }

  /**
   * `CONNECTIONS` loops of GET: throughput and latency count the 200s with the expected body that complete
   * inside the window; `answered` counts every answer, warm-up included. Returns the window's successes a
   * second.
   */
  async load(warmupSeconds: number, seconds: number): Promise<number> {
    const { path } = this.route;
    const cpuBefore = process.cpuUsage();
    const rate = await this.turns.run({
      clients: CONNECTIONS,
      timed: 'successes',
      warmupSeconds,
      seconds,
      send: async () => {
        const response = await this.pool.request({ path, method: 'GET', headers: await this.headers() });
        const text = await response.body.text();
        this.answered++;
        return response.statusCode === 200 && text === EXPECTED_BODY
          ? { ok: 1, failed: 0 }
          : { ok: 0, failed: 1, error: `${response.statusCode} ${truncate(text)}` };
      },
    });
    const cpu = process.cpuUsage(cpuBefore);
    this.cpuUs += cpu.user + cpu.system;
    return rate;
  }

  scenario(seconds: number): Scenario {
    const { perSecond, ...measured } = this.turns.measured(seconds);
    const { name, label, path } = this.route;
    const result: Scenario = {
      name,
      label,
      route: `GET ${path}`,
      requestsPerSecond: perSecond,
      answered: this.answered,
      cpuUsPerCall: this.cpuUs / this.answered,
      ...measured,
    };
    console.log(
      `${label}: ${format(result.requestsPerSecond)} requests/s, p50 ${ms(result.p50Ms)} ms, ` +
        `p99 ${ms(result.p99Ms)} ms, ${Math.round(result.cpuUsPerCall)} µs CPU a call, ${result.errors} errors`,
    );
    return result;
  }
}

/** One row on its own: the warm-up, then SECONDS. */
async function run(route: Route, headers: Headers): Promise<Scenario> {
  const [scenario] = (await runInTurns([route], headers, 1)).scenarios;
  return scenario as Scenario;
}

/** The rows in turns (`inTurns`), each pooling its rounds. `roundRatios`: the second row's over the first's. */
async function runInTurns(
  routes: readonly Route[],
  headers: Headers,
  rounds: number,
): Promise<{ scenarios: Scenario[]; roundRatios: number[] }> {
  const tallies = routes.map((route) => new Tally(route, headers));
  try {
    const roundRatios = await inTurns(tallies, rounds, (tally, warmupSeconds, seconds) =>
      tally.load(warmupSeconds, seconds),
    );
    return { scenarios: tallies.map((tally) => tally.scenario(SECONDS)), roundRatios };
  } finally {
    for (const tally of tallies) await tally.pool.close();
  }
}

// ---------------------------------------------------------------------------------------------- report

interface PipelineCounts {
  /** Audit records written during the full app's runs, and the calls it answered then. */
  readonly audited: number;
  readonly served: number;
  readonly dropped: number;
  /** Calls in the usage tallies, and the calls answered through the gateway. */
  readonly metered: number;
  readonly gatewayCalls: number;
  readonly flushErrors: number;
}

function printReport(
  scenarios: readonly Scenario[],
  roundRatios: readonly number[],
  counts: PipelineCounts,
): void {
  const bare = scenarios.find((s) => s.name === 'bare');
  const header = [
    'scenario',
    'route',
    'requests/s',
    'p50 ms',
    'p99 ms',
    'CPU µs/call',
    'requests',
    'errors',
    'full ÷ bare',
  ];
  const rows = scenarios.map((s) => {
    const ratio = bare && s !== bare ? s.requestsPerSecond / bare.requestsPerSecond : undefined;
    let verdict = 'baseline';
    if (ratio !== undefined) {
      verdict = ratio.toFixed(2);
      if (s.name === 'bearer') {
        const met = ratio >= RATIO_TARGET && s.errors === 0 && bare?.errors === 0;
        verdict += `  target ≥ ${RATIO_TARGET.toFixed(2)}, 0 errors ${met ? 'met' : 'MISSED'}`;
      }
    }
    return [
      s.label,
      s.route,
      format(s.requestsPerSecond),
      ms(s.p50Ms),
      ms(s.p99Ms),
      s === bare
        ? String(Math.round(s.cpuUsPerCall))
        : `${Math.round(s.cpuUsPerCall)} (+${Math.round(s.cpuUsPerCall - (bare?.cpuUsPerCall ?? 0))})`,
      format(s.requests),
      String(s.errors),
      verdict,
    ];
  });

  console.log(
    `\n== Results (${SECONDS} s per route in ${ROUNDS} turns, ${CONNECTIONS} connections; in process: client ` +
      'CPU competes with the servers, which flatters the ratio)',
  );
  printTable(header, rows);
  console.log(`full ÷ bare in each round: ${roundsReport(roundRatios)}`);

  const allAudited = counts.audited === counts.served && counts.dropped === 0;
  const allMetered = counts.metered === counts.gatewayCalls;
  console.log(
    `\naudit: ${format(counts.audited)} records written for ${format(counts.served)} calls answered by the ` +
      `full app (warm-up included), ${counts.dropped} dropped: ${allAudited ? 'every call audited' : 'MISMATCH'}`,
  );
  console.log(
    `metering: ${format(counts.metered)} calls in the usage tallies for ${format(counts.gatewayCalls)} ` +
      `answered through the gateway: ${allMetered ? 'every call metered' : 'MISMATCH'}`,
  );
  if (counts.flushErrors > 0) console.log(`${counts.flushErrors} background flushes failed`);
  // A pipeline that skipped its work would look fast: make `npm run bench` fail rather than report it.
  if (!allAudited || !allMetered || counts.flushErrors > 0) process.exitCode = 1;
  for (const s of scenarios) for (const sample of s.errorSamples) console.log(`${s.label} error: ${sample}`);
}

// On PostgreSQL when one answers (as in production); else on PGlite.
const ranOnPostgres = await onPostgres('bench_gateway', 'apibank-bench-gateway-', async (database) => {
  await main(database.env.DATABASE_URL);
  return true;
});
if (!ranOnPostgres) await main(undefined);
