// UK Open Banking Read/Write v4.0, Events API (`/open-banking/v4.0`): an app's event subscription and the
// aggregated polling endpoint, over the bank's transactional outbox. The events an app is told of are the
// ones webhooks would deliver to it (payload.clientId is the app: the payments it initiated), each given
// as the specification's event notification, a security event token signed with the bank's key. The
// contract is the official file (specs/uk-open-banking-v4.0/events-openapi.yaml), so these routes stay
// out of /openapi.json.
//
// Only aggregated polling: a subscription with a CallbackUrl (real-time push) is refused, so a third party
// is never left waiting for notifications the bank does not send.
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { v4 as uuidv4 } from 'uuid';
import type { Db, Sql } from '../../db/db.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { accessOf, UUID } from './access.ts';
import { OB_ERROR_CODES, ObError, useObConventions } from './errors.ts';
import { type MessageSigning, signedMessages, tokenSigner } from './jws.ts';
import { PISP_PREFIX } from './pisp.ts';

export const EVENTS_PREFIX = '/open-banking/v4.0';
export const RESOURCE_UPDATE = 'urn:uk:org:openbanking:events:resource-update';
/** Most notifications one poll returns; `moreAvailable` tells the app to poll again. */
export const POLL_MAX_EVENTS = 100;
// The specification's scopes for every Events operation: any one of them will do.
const SCOPES = ['accounts', 'payments', 'fundsconfirmations'];
const JTI = /^evt_([1-9]\d{0,17})$/;

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
const SubscriptionData = {
  CallbackUrl: Type.Optional(Type.String()),
  Version: Text(10),
  EventTypes: Type.Optional(Type.Array(Type.String(), { maxItems: 16 })),
};
const NewSubscription = Type.Object(
  { Data: Type.Object(SubscriptionData, { additionalProperties: false }) },
  { additionalProperties: false },
);
const ChangedSubscription = Type.Object(
  {
    Data: Type.Object(
      { EventSubscriptionId: Text(40), ...SubscriptionData },
      { additionalProperties: false },
    ),
    Links: Type.Optional(Type.Unknown()),
    Meta: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);
const Polling = Type.Object(
  {
    maxEvents: Type.Optional(Type.Integer({ minimum: 0 })),
    returnImmediately: Type.Optional(Type.Boolean()),
    ack: Type.Optional(Type.Array(Text(128), { maxItems: 1000 })),
    setErrs: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Object({ err: Text(40), description: Text(256) }, { additionalProperties: false }),
      ),
    ),
  },
  { additionalProperties: false },
);
const Hidden = { hide: true } as const;
const IdParams = { ...Hidden, params: Type.Object({ EventSubscriptionId: Type.String() }) };

interface SubscriptionRow {
  id: string;
  version: string;
  event_types: string[] | null;
  created_at: Date;
}

export function registerUkObEventsRoutes(
  app: App,
  deps: { db: Db } & MessageSigning,
  gateway: ReturnType<typeof createGateway>,
): void {
  const { db, publicUrl } = deps;
  const self = (path: string) => `${publicUrl}${EVENTS_PREFIX}${path}`;
  const signToken = tokenSigner(deps.signingKey);

  scoped(app, (scope) => {
    useObConventions(scope);
    // Signed both ways (jws.ts): every answer carries x-jws-signature (polling answers carry their own
    // signatures inside too, one per notification), and a subscription's creation or change must be signed
    // by its app, as the specification requires of those two requests.
    const signed = signedMessages(scope, deps);

    const appOf = (request: FastifyRequest): string => {
      const access = accessOf(request);
      if (access.subject !== access.clientId || !SCOPES.some((s) => access.scopes.has(s))) {
        throw ObError.of(
          403,
          OB_ERROR_CODES.narrative,
          `events are read with the app token (client credentials) and a scope of ${SCOPES.join(', ')}`,
        );
      }
      return access.clientId;
    };
    const subscriptionOf = async (clientId: string, id?: string): Promise<SubscriptionRow> => {
      const [row] = await db.query<SubscriptionRow>(
        'select id, version, event_types, created_at from ob_event_subscriptions where app_id = $1',
        [clientId],
      );
      if (!row || (id !== undefined && row.id !== id)) {
        throw ObError.of(
          400,
          OB_ERROR_CODES.resourceNotFound,
          'no event subscription with this EventSubscriptionId',
          'EventSubscriptionId',
        );
      }
      return row;
    };
    const json = (row: SubscriptionRow) => ({
      EventSubscriptionId: row.id,
      Version: row.version,
      ...(row.event_types && { EventTypes: row.event_types }),
    });

    scope.post(
      `${EVENTS_PREFIX}/event-subscriptions`,
      { schema: { ...Hidden, body: NewSubscription }, onRequest: gateway('consents'), preValidation: signed },
      async (request, reply) => {
        const clientId = appOf(request);
        const data = request.body.Data;
        checkTerms(data);
        const id = uuidv4();
        const [row] = await db.query<SubscriptionRow>(
          `insert into ob_event_subscriptions (id, app_id, version, event_types, created_at)
           values ($1, $2, $3, $4, $5) on conflict (app_id) do nothing
           returning id, version, event_types, created_at`,
          [id, clientId, data.Version, data.EventTypes ?? null, new Date()],
        );
        if (!row) {
          throw new ObError(409, [
            {
              ErrorCode: OB_ERROR_CODES.narrative,
              Message: 'this app has an event subscription already: change or delete it',
            },
          ]);
        }
        return reply
          .code(201)
          .send({ Data: json(row), Links: { Self: self(`/event-subscriptions/${row.id}`) }, Meta: {} });
      },
    );

    scope.get(
      `${EVENTS_PREFIX}/event-subscriptions`,
      { schema: Hidden, onRequest: gateway('consents') },
      async (request) => {
        const clientId = appOf(request);
        const rows = await db.query<SubscriptionRow>(
          'select id, version, event_types, created_at from ob_event_subscriptions where app_id = $1',
          [clientId],
        );
        return {
          Data: { EventSubscription: rows.map(json) },
          Links: { Self: self('/event-subscriptions') },
          Meta: {},
        };
      },
    );

    scope.put(
      `${EVENTS_PREFIX}/event-subscriptions/:EventSubscriptionId`,
      {
        schema: { ...IdParams, body: ChangedSubscription },
        onRequest: gateway('consents'),
        preValidation: signed,
      },
      async (request) => {
        const clientId = appOf(request);
        const id = request.params.EventSubscriptionId;
        const data = request.body.Data;
        await subscriptionOf(clientId, UUID.test(id) ? id : '');
        if (data.EventSubscriptionId !== id) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            'must be the EventSubscriptionId of the path',
            'Data.EventSubscriptionId',
          );
        }
        checkTerms(data);
        const [row] = await db.query<SubscriptionRow>(
          `update ob_event_subscriptions set version = $3, event_types = $4 where id = $1 and app_id = $2
           returning id, version, event_types, created_at`,
          [id, clientId, data.Version, data.EventTypes ?? null],
        );
        if (!row) return subscriptionOf(clientId, '');
        return { Data: json(row), Links: { Self: self(`/event-subscriptions/${row.id}`) }, Meta: {} };
      },
    );

    scope.delete(
      `${EVENTS_PREFIX}/event-subscriptions/:EventSubscriptionId`,
      { schema: IdParams, onRequest: gateway('consents') },
      async (request, reply) => {
        const clientId = appOf(request);
        const id = request.params.EventSubscriptionId;
        await subscriptionOf(clientId, UUID.test(id) ? id : '');
        // The answers go with it: a new subscription starts from its own creation, with nothing pending.
        await db.transaction(async (tx) => {
          await tx.query('delete from ob_event_subscriptions where id = $1 and app_id = $2', [id, clientId]);
          await tx.query('delete from ob_event_answers where app_id = $1', [clientId]);
        });
        return reply.code(204).send();
      },
    );

    scope.post(
      `${EVENTS_PREFIX}/events`,
      { schema: { ...Hidden, body: Polling }, onRequest: gateway('consents') },
      async (request) => {
        const clientId = appOf(request);
        const body = request.body;
        const subscription = await subscriptionOf(clientId);
        // Every jti is checked before anything is recorded: a malformed one answers nothing.
        const acked = (body.ack ?? []).map((jti, index) => eventIdOf(jti, `ack.${index}`));
        const errors = Object.entries(body.setErrs ?? {}).map(([jti, error]) => ({
          eventId: eventIdOf(jti, `setErrs.${jti}`),
          ...error,
        }));
        const limit = Math.min(body.maxEvents ?? POLL_MAX_EVENTS, POLL_MAX_EVENTS);
        const { events, more } = await db.transaction(async (tx) => {
          await answer(tx, clientId, acked, errors);
          const rows = await pendingEvents(tx, clientId, subscription, limit + 1);
          return { events: rows.slice(0, limit), more: rows.length > limit };
        });
        const sets: Record<string, string> = {};
        for (const event of events) {
          const jti = `evt_${event.id}`;
          const paymentId = String(event.payload.paymentId ?? '');
          const link = `${publicUrl}${PISP_PREFIX}/domestic-payments/${paymentId}`;
          sets[jti] = await signToken({
            iss: publicUrl,
            iat: Math.floor(Date.now() / 1000),
            jti,
            aud: clientId,
            sub: link,
            txn: request.fapiInteractionId ?? uuidv4(),
            toe: Math.floor(event.created_at.getTime() / 1000),
            events: {
              [RESOURCE_UPDATE]: {
                subject: {
                  subject_type: 'http://openbanking.org.uk/rid_http://openbanking.org.uk/rty',
                  'http://openbanking.org.uk/rid': paymentId,
                  'http://openbanking.org.uk/rty': 'domestic-payment',
                  'http://openbanking.org.uk/rlk': [{ version: '4.0', link }],
                },
              },
            },
          });
        }
        return { moreAvailable: more, sets };
      },
    );
  });
}

function checkTerms(data: { CallbackUrl?: string | undefined; EventTypes?: string[] | undefined }): void {
  if (data.CallbackUrl !== undefined) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      'event notifications are offered through aggregated polling (POST /events) only, not callbacks',
      'Data.CallbackUrl',
    );
  }
  const unknown = (data.EventTypes ?? []).findIndex((type) => type !== RESOURCE_UPDATE);
  if (unknown >= 0) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      `the bank offers ${RESOURCE_UPDATE} only`,
      `Data.EventTypes.${unknown}`,
    );
  }
}

function eventIdOf(jti: string, path: string): string {
  const id = JTI.exec(jti)?.[1];
  if (id === undefined) {
    throw ObError.of(400, OB_ERROR_CODES.fieldInvalid, 'is not the jti of an event notification', path);
  }
  return id;
}

/**
 * Records the app's answers, all in one statement (a poll may carry a few thousand), the first answer to
 * an event the one kept; ids of events that are not the app's are ignored, never recorded.
 */
async function answer(
  tx: Sql,
  clientId: string,
  acked: readonly string[],
  errors: readonly { eventId: string; err: string; description: string }[],
): Promise<void> {
  const rows = [
    ...acked.map((eventId) => ({ eventId, err: null, description: null })),
    ...errors.map(({ eventId, err, description }) => ({ eventId, err, description })),
  ];
  if (rows.length === 0) return;
  await tx.query(
    `insert into ob_event_answers (app_id, event_id, err, description, answered_at)
     select $1::uuid, e.id, a.err, a.description, $3
       from rows from (jsonb_to_recordset($2::text::jsonb) as ("eventId" bigint, err text, description text))
            with ordinality as a("eventId", err, description, n)
       join outbox_events e on e.id = a."eventId" and e.payload ->> 'clientId' = $4
      order by a.n
     on conflict (app_id, event_id) do nothing`,
    [clientId, JSON.stringify(rows), new Date(), clientId],
  );
}

/** The app's payment events since it subscribed that it has not answered, oldest first. */
function pendingEvents(tx: Sql, clientId: string, subscription: SubscriptionRow, limit: number) {
  return tx.query<{ id: string; payload: Record<string, unknown>; created_at: Date }>(
    `select e.id::text as id, e.payload, e.created_at from outbox_events e
      where e.payload ->> 'clientId' = $1 and e.type like 'payment.%' and e.created_at >= $2
        and not exists (select 1 from ob_event_answers a where a.app_id = $3::uuid and a.event_id = e.id)
      order by e.id limit $4`,
    [clientId, subscription.created_at, clientId, limit],
  );
}
