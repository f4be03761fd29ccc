import { Type } from 'typebox';
import { developerOf, requireDeveloper } from '../developers/routes.ts';
import type { Developers } from '../developers/service.ts';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import { Problem } from '../http/problems.ts';
import {
  DateTime,
  NextCursor,
  NoContent,
  Nullable,
  ReadonlyList,
  StringEnum,
  Uuid,
} from '../http/schemas.ts';
import { APPS_PAGE_MAX, type AppOutcome, type Apps, OFFERED_SCOPES } from './service.ts';
import type { AppRecord } from './store.ts';

const Id = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' });
const IdParams = Type.Object({ id: Id });
const AuthMethod = Type.Union([
  Type.Literal('client_secret_basic'),
  Type.Literal('client_secret_post'),
  Type.Literal('private_key_jwt'),
  Type.Literal('tls_client_auth'),
]);
const Jwks = Type.Object(
  {
    keys: Type.Array(Type.Object({ kty: Type.String() }, { additionalProperties: true }), {
      minItems: 1,
      maxItems: 10,
    }),
  },
  { additionalProperties: false },
);
const settingsFields = {
  name: Type.String({ minLength: 1, maxLength: 100 }),
  redirectUris: Type.Array(Type.String({ minLength: 1, maxLength: 2000 }), {
    minItems: 1,
    maxItems: 10,
    uniqueItems: true,
  }),
  scopes: Type.Array(Type.Union(OFFERED_SCOPES.map((scope) => Type.Literal(scope))), {
    maxItems: 10,
    uniqueItems: true,
  }),
  tokenEndpointAuthMethod: AuthMethod,
  jwks: Type.Optional(Type.Union([Jwks, Type.Null()])),
  jwksUri: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
};
const NewAppBody = Type.Object(settingsFields, { additionalProperties: false });
const AppChangesBody = Type.Object(
  {
    name: Type.Optional(settingsFields.name),
    redirectUris: Type.Optional(settingsFields.redirectUris),
    scopes: Type.Optional(settingsFields.scopes),
    tokenEndpointAuthMethod: Type.Optional(AuthMethod),
    jwks: settingsFields.jwks,
    jwksUri: settingsFields.jwksUri,
  },
  { additionalProperties: false, minProperties: 1 },
);
const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })),
    cursor: Type.Optional(Id),
  },
  { additionalProperties: false },
);

const AppView = Type.Object(
  {
    id: Uuid,
    clientId: Uuid,
    name: Type.String(),
    redirectUris: ReadonlyList(Type.String()),
    scopes: ReadonlyList(Type.String()),
    tokenEndpointAuthMethod: StringEnum([
      'client_secret_basic',
      'client_secret_post',
      'private_key_jwt',
      'tls_client_auth',
    ]),
    // A JSON Web Key Set (RFC 7517 §5): each key's members depend on its type, so they pass as they are.
    jwks: Nullable(
      Type.Unsafe<AppRecord['jwks'] & object>(
        Type.Object({
          keys: Type.Array(Type.Object({ kty: Type.String() }, { additionalProperties: true })),
        }),
      ),
    ),
    jwksUri: Nullable(Type.String()),
    status: StringEnum(['active', 'suspended']),
    createdAt: DateTime,
    updatedAt: DateTime,
    clientSecret: Type.Optional(
      Type.String({ description: 'Only when created or rotated; the bank never shows it again' }),
    ),
  },
  { description: 'An app (an OAuth client)' },
);
const AppPage = Type.Object(
  { apps: Type.Array(AppView), nextCursor: NextCursor },
  { description: 'Apps, oldest first' },
);

function appJson(app: AppRecord, clientSecret?: string) {
  return {
    id: app.id,
    clientId: app.id,
    name: app.name,
    redirectUris: app.redirectUris,
    scopes: app.scopes,
    tokenEndpointAuthMethod: app.tokenEndpointAuthMethod,
    jwks: app.jwks,
    jwksUri: app.jwksUri,
    status: app.status,
    createdAt: app.createdAt.toISOString(),
    updatedAt: app.updatedAt.toISOString(),
    // Shown once, when created or rotated; the bank never shows it again.
    ...(clientSecret === undefined ? {} : { clientSecret }),
  };
}

function appOrProblem(outcome: AppOutcome) {
  if (!outcome.ok) throw new Problem(outcome.code, outcome.detail);
  return appJson(outcome.app, outcome.clientSecret);
}

function page(apps: AppRecord[], limit: number) {
  const items = apps.slice(0, limit);
  // The cursor is the last app's id (ids are time-ordered UUIDv7).
  return {
    apps: items.map((app) => appJson(app)),
    nextCursor: apps.length > limit ? (items.at(-1)?.id ?? null) : null,
  };
}

/** Developers manage their own apps. */
export function registerAppRoutes(app: App, apps: Apps, developers: Developers): void {
  scoped(app, (scope) => {
    scope.addHook('onRequest', requireDeveloper(developers));

    scope.post(
      '/v1/apps',
      { schema: { body: NewAppBody, response: { 201: AppView } }, config: { idempotent: true } },
      async (request, reply) => {
        const body = request.body;
        const outcome = await apps.create(developerOf(request).id, {
          ...body,
          jwks: body.jwks ?? null,
          jwksUri: body.jwksUri ?? null,
        });
        return reply.code(201).send(appOrProblem(outcome));
      },
    );

    scope.get(
      '/v1/apps',
      { schema: { querystring: ListQuery, response: { 200: AppPage } } },
      async (request) => {
        const limit = Number(request.query.limit ?? 50);
        if (limit > APPS_PAGE_MAX)
          throw new Problem('validation_failed', `/querystring/limit must be at most ${APPS_PAGE_MAX}`);
        return page(await apps.list(developerOf(request).id, request.query.cursor, limit + 1), limit);
      },
    );

    scope.get(
      '/v1/apps/:id',
      { schema: { params: IdParams, response: { 200: AppView } } },
      async (request) => {
        const found = await apps.get(developerOf(request).id, request.params.id);
        if (!found) throw new Problem('not_found', 'no app with this id');
        return appJson(found);
      },
    );

    scope.patch(
      '/v1/apps/:id',
      { schema: { params: IdParams, body: AppChangesBody, response: { 200: AppView } } },
      async (request) =>
        appOrProblem(await apps.update(developerOf(request).id, request.params.id, request.body)),
    );

    scope.post(
      '/v1/apps/:id/secret',
      { schema: { params: IdParams, response: { 200: AppView } }, config: { idempotent: true } },
      async (request) => appOrProblem(await apps.rotateSecret(developerOf(request).id, request.params.id)),
    );

    scope.delete(
      '/v1/apps/:id',
      { schema: { params: IdParams, response: { 204: NoContent } } },
      async (request, reply) => {
        if (!(await apps.delete(developerOf(request).id, request.params.id))) {
          throw new Problem('not_found', 'no app with this id');
        }
        return reply.code(204).send();
      },
    );
  });
}

/** Operators list every app and suspend or reinstate one. */
export function registerAppAdminRoutes(app: App, apps: Apps, adminToken: string): void {
  scoped(app, (scope) => {
    scope.addHook('onRequest', requireBearerToken(adminToken));

    scope.get(
      '/v1/admin/apps',
      { schema: { querystring: ListQuery, response: { 200: AppPage } } },
      async (request) => {
        const limit = Number(request.query.limit ?? 50);
        if (limit > APPS_PAGE_MAX)
          throw new Problem('validation_failed', `/querystring/limit must be at most ${APPS_PAGE_MAX}`);
        return page(await apps.list(undefined, request.query.cursor, limit + 1), limit);
      },
    );

    for (const [action, status] of [
      ['suspend', 'suspended'],
      ['reinstate', 'active'],
    ] as const) {
      scope.post(
        `/v1/admin/apps/:id/${action}`,
        { schema: { params: IdParams, response: { 200: AppView } } },
        async (request) => {
          const updated = await apps.setStatus(request.params.id, status);
          if (!updated) throw new Problem('not_found', 'no app with this id');
          return appJson(updated);
        },
      );
    }
  });
}
