import { Type } from 'typebox';
import { developerOf, requireDeveloper } from '../developers/routes.ts';
import type { Developers } from '../developers/service.ts';
import type { App } from '../http/app.ts';
import { CURSOR_POSITION, decodeCursor, encodeCursor, PageLimit, pageLimit } from '../http/cursor.ts';
import { Problem } from '../http/problems.ts';
import {
  DateTime,
  NextCursor,
  NoContent,
  Nullable,
  NullableStringEnum,
  ReadonlyList,
  StringEnum,
  Uuid,
} from '../http/schemas.ts';
import {
  DELIVERIES_PAGE_MAX,
  ENDPOINTS_PAGE_MAX,
  type EndpointOutcome,
  type EndpointView,
  EVENT_TYPE_PATTERN,
  EVENT_TYPES_MAX,
  URL_LENGTH_MAX,
  type Webhooks,
} from './service.ts';
import type { Delivery } from './store.ts';

const Id = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' });
const AppParams = Type.Object({ appId: Id });
const EndpointParams = Type.Object({ appId: Id, id: Id });
const DeliveryParams = Type.Object({ appId: Id, id: Id, deliveryId: Id });
const fields = {
  url: Type.String({ minLength: 1, maxLength: URL_LENGTH_MAX }),
  eventTypes: Type.Array(Type.String({ pattern: EVENT_TYPE_PATTERN, maxLength: 200 }), {
    minItems: 1,
    maxItems: EVENT_TYPES_MAX,
    uniqueItems: true,
    description: "Exact types ('payment.settled'), prefix wildcards ('payment.*') or '*'",
  }),
  description: Type.String({ maxLength: 500 }),
};
const NewEndpointBody = Type.Object(
  { url: fields.url, eventTypes: fields.eventTypes, description: Type.Optional(fields.description) },
  { additionalProperties: false },
);
const EndpointChangesBody = Type.Object(
  {
    url: Type.Optional(fields.url),
    eventTypes: Type.Optional(fields.eventTypes),
    description: Type.Optional(Type.Union([fields.description, Type.Null()])),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
);
const ListQuery = Type.Object(
  { limit: Type.Optional(PageLimit), cursor: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
const DeliveriesQuery = Type.Object(
  {
    limit: Type.Optional(PageLimit),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    status: Type.Optional(
      Type.Union([
        Type.Literal('pending'),
        Type.Literal('sending'),
        Type.Literal('delivered'),
        Type.Literal('failed'),
      ]),
    ),
  },
  { additionalProperties: false },
);

const ENDPOINTS_CURSOR = 'webhook_endpoints';
const DELIVERIES_CURSOR = 'webhook_deliveries';
const iso = (date: Date | null) => (date === null ? null : date.toISOString());

const WebhookEndpointView = Type.Object(
  {
    id: Uuid,
    appId: Uuid,
    url: Type.String(),
    eventTypes: ReadonlyList(Type.String()),
    description: Nullable(Type.String()),
    enabled: Type.Boolean(),
    disabledReason: NullableStringEnum(['developer', 'failing', 'gone']),
    previousSecretExpiresAt: Nullable(DateTime),
    createdAt: DateTime,
    updatedAt: DateTime,
    secret: Type.Optional(
      Type.String({ description: 'Only when created or rotated; the bank never shows it again' }),
    ),
  },
  { description: 'A webhook endpoint' },
);
const EndpointPage = Type.Object(
  { endpoints: Type.Array(WebhookEndpointView), nextCursor: NextCursor },
  { description: "The app's webhook endpoints" },
);

function endpointJson(endpoint: EndpointView, secret?: string) {
  return {
    id: endpoint.id,
    appId: endpoint.appId,
    url: endpoint.url,
    eventTypes: endpoint.eventTypes,
    description: endpoint.description,
    enabled: endpoint.enabled,
    disabledReason: endpoint.disabledReason,
    previousSecretExpiresAt: iso(endpoint.previousSecretExpiresAt),
    createdAt: endpoint.createdAt.toISOString(),
    updatedAt: endpoint.updatedAt.toISOString(),
    // Shown once, when created or rotated; the bank never shows it again.
    ...(secret === undefined ? {} : { secret }),
  };
}

const DeliveryView = Type.Object(
  {
    id: Uuid,
    endpointId: Uuid,
    eventId: Type.String({ description: "The outbox event's sequence number" }),
    eventType: Type.String(),
    webhookId: Type.String({ description: 'The webhook-id header: the same for every attempt' }),
    status: StringEnum(['pending', 'sending', 'delivered', 'failed']),
    attempts: Type.Integer(),
    responseStatus: Nullable(Type.Integer()),
    error: Nullable(Type.String()),
    durationMs: Nullable(Type.Integer()),
    lastAttemptAt: Nullable(DateTime),
    nextAttemptAt: Nullable(DateTime),
    deliveredAt: Nullable(DateTime),
    replayOf: Nullable(Uuid),
    createdAt: DateTime,
  },
  { description: 'A delivery of an event to the endpoint' },
);
const DeliveryPage = Type.Object(
  { deliveries: Type.Array(DeliveryView), nextCursor: NextCursor },
  { description: 'Deliveries, newest first' },
);

function deliveryJson(delivery: Delivery) {
  return {
    id: delivery.id,
    endpointId: delivery.endpointId,
    eventId: String(delivery.eventId),
    eventType: delivery.eventType,
    webhookId: delivery.messageId,
    status: delivery.status,
    attempts: delivery.attempts,
    responseStatus: delivery.responseStatus,
    error: delivery.error,
    durationMs: delivery.durationMs,
    lastAttemptAt: iso(delivery.lastAttemptAt),
    nextAttemptAt: iso(delivery.nextAttemptAt),
    deliveredAt: iso(delivery.deliveredAt),
    replayOf: delivery.replayOf,
    createdAt: delivery.createdAt.toISOString(),
  };
}

function endpointOrProblem(outcome: EndpointOutcome) {
  if (!outcome.ok) {
    if (outcome.code === 'invalid_webhook_url') {
      throw new Problem(outcome.code, outcome.detail, {
        errors: [{ field: '/body/url', message: outcome.detail ?? 'is not allowed' }],
      });
    }
    throw new Problem(outcome.code, outcome.detail);
  }
  return endpointJson(outcome.endpoint, outcome.secret);
}

const notFound = () => new Problem('not_found', 'no webhook endpoint with this id for this app');

/** Developers manage their apps' webhook endpoints. Register inside its own `scoped` context. */
export function registerWebhookRoutes(scope: App, webhooks: Webhooks, developers: Developers): void {
  scope.addHook('onRequest', requireDeveloper(developers));
  const base = '/v1/apps/:appId/webhooks';

  scope.post(
    base,
    {
      schema: { params: AppParams, body: NewEndpointBody, response: { 201: WebhookEndpointView } },
      config: { idempotent: true },
    },
    async (request, reply) => {
      const outcome = await webhooks.create(developerOf(request).id, request.params.appId, request.body);
      if (!outcome.ok && outcome.code === 'not_found') throw new Problem('not_found', 'no app with this id');
      return reply.code(201).send(endpointOrProblem(outcome));
    },
  );

  scope.get(
    base,
    { schema: { params: AppParams, querystring: ListQuery, response: { 200: EndpointPage } } },
    async (request) => {
      const limit = pageLimit(request.query.limit, 20, ENDPOINTS_PAGE_MAX);
      const after =
        request.query.cursor === undefined
          ? undefined
          : decodeCursor(request.query.cursor, ENDPOINTS_CURSOR, CURSOR_POSITION.uuid);
      const endpoints = await webhooks.list(developerOf(request).id, request.params.appId, after, limit + 1);
      if (!endpoints) throw new Problem('not_found', 'no app with this id');
      const items = endpoints.slice(0, limit);
      const last = items.at(-1);
      return {
        endpoints: items.map((endpoint) => endpointJson(endpoint)),
        nextCursor: endpoints.length > limit && last ? encodeCursor(ENDPOINTS_CURSOR, last.id) : null,
      };
    },
  );

  scope.get(
    `${base}/:id`,
    { schema: { params: EndpointParams, response: { 200: WebhookEndpointView } } },
    async (request) => {
      const endpoint = await webhooks.get(developerOf(request).id, request.params.appId, request.params.id);
      if (!endpoint) throw notFound();
      return endpointJson(endpoint);
    },
  );

  scope.patch(
    `${base}/:id`,
    { schema: { params: EndpointParams, body: EndpointChangesBody, response: { 200: WebhookEndpointView } } },
    async (request) => {
      const outcome = await webhooks.update(
        developerOf(request).id,
        request.params.appId,
        request.params.id,
        request.body,
      );
      if (!outcome.ok && outcome.code === 'not_found') throw notFound();
      return endpointOrProblem(outcome);
    },
  );

  scope.delete(
    `${base}/:id`,
    { schema: { params: EndpointParams, response: { 204: NoContent } } },
    async (request, reply) => {
      if (!(await webhooks.delete(developerOf(request).id, request.params.appId, request.params.id)))
        throw notFound();
      return reply.code(204).send();
    },
  );

  scope.post(
    `${base}/:id/secret`,
    {
      schema: { params: EndpointParams, response: { 200: WebhookEndpointView } },
      config: { idempotent: true },
    },
    async (request) => {
      const outcome = await webhooks.rotateSecret(
        developerOf(request).id,
        request.params.appId,
        request.params.id,
      );
      if (!outcome.ok && outcome.code === 'not_found') throw notFound();
      return endpointOrProblem(outcome);
    },
  );

  scope.get(
    `${base}/:id/deliveries`,
    { schema: { params: EndpointParams, querystring: DeliveriesQuery, response: { 200: DeliveryPage } } },
    async (request) => {
      const limit = pageLimit(request.query.limit, 50, DELIVERIES_PAGE_MAX);
      const before =
        request.query.cursor === undefined
          ? undefined
          : decodeCursor(request.query.cursor, DELIVERIES_CURSOR, CURSOR_POSITION.uuid);
      const deliveries = await webhooks.deliveries(
        developerOf(request).id,
        request.params.appId,
        request.params.id,
        {
          ...(before === undefined ? {} : { beforeId: before }),
          ...(request.query.status === undefined ? {} : { status: request.query.status }),
          limit: limit + 1,
        },
      );
      if (!deliveries) throw notFound();
      const items = deliveries.slice(0, limit);
      const last = items.at(-1);
      return {
        deliveries: items.map(deliveryJson),
        nextCursor: deliveries.length > limit && last ? encodeCursor(DELIVERIES_CURSOR, last.id) : null,
      };
    },
  );

  scope.post(
    `${base}/:id/deliveries/:deliveryId/replay`,
    { schema: { params: DeliveryParams, response: { 202: DeliveryView } } },
    async (request, reply) => {
      const { appId, id, deliveryId } = request.params;
      const outcome = await webhooks.replay(developerOf(request).id, appId, id, deliveryId);
      if (!outcome.ok) {
        if (outcome.code === 'not_found') throw new Problem('not_found', 'no such delivery of this endpoint');
        throw new Problem(outcome.code, 'enable the endpoint before replaying to it');
      }
      return reply.code(202).send(deliveryJson(outcome.delivery));
    },
  );
}
