import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { type App, scoped } from '../http/app.ts';
import { checks } from '../http/openapi.ts';
import { Problem } from '../http/problems.ts';
import { DateTime, NoContent, Uuid } from '../http/schemas.ts';
import type { Developers } from './service.ts';
import type { Developer } from './store.ts';

const PASSWORD_LENGTH_MIN = 12;
const Email = Type.String({ pattern: '^[^\\s@]{1,64}@[^\\s@]+\\.[^\\s@]+$', maxLength: 254 });
const Password = Type.String({ minLength: PASSWORD_LENGTH_MIN, maxLength: 256 });

const SignUpBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 200 }), email: Email, password: Password },
  { additionalProperties: false },
);
const LogInBody = Type.Object(
  { email: Email, password: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);

declare module 'fastify' {
  interface FastifyRequest {
    developer?: Developer;
  }
}

const bearer = (request: FastifyRequest) =>
  /^Bearer ([\x21-\x7e]+)$/.exec(request.headers.authorization ?? '')?.[1];

/** An onRequest hook admitting a developer's portal session token, and putting the developer on the request. */
export function requireDeveloper(developers: Developers) {
  return checks('developerToken', async (request: FastifyRequest): Promise<void> => {
    const token = bearer(request);
    const developer = token === undefined ? undefined : await developers.authenticate(token);
    if (!developer)
      throw new Problem('unauthorized', 'send a developer session token as Authorization: Bearer <token>');
    request.developer = developer;
  });
}

/** The developer who made this request; only call after `requireDeveloper` ran. */
export function developerOf(request: FastifyRequest): Developer {
  if (!request.developer) throw new Error('route registered without requireDeveloper');
  return request.developer;
}

const DeveloperView = Type.Object(
  { id: Uuid, name: Type.String(), email: Type.String(), createdAt: DateTime },
  { description: 'The developer' },
);
const SessionView = Type.Object(
  { token: Type.String(), expiresAt: DateTime },
  { description: 'A session token: send it as Authorization: Bearer <token>' },
);

const developerJson = (developer: Developer) => ({
  id: developer.id,
  name: developer.name,
  email: developer.email,
  createdAt: developer.createdAt.toISOString(),
});

export function registerDeveloperRoutes(app: App, developers: Developers): void {
  app.post(
    '/v1/developers',
    { schema: { body: SignUpBody, response: { 201: DeveloperView } } },
    async (request, reply) => {
      const outcome = await developers.signUp(request.body);
      if (!outcome.ok) throw new Problem(outcome.code);
      return reply.code(201).send(developerJson(outcome.developer));
    },
  );

  app.post(
    '/v1/developers/sessions',
    { schema: { body: LogInBody, response: { 201: SessionView } } },
    async (request, reply) => {
      const outcome = await developers.logIn(request.body);
      if (!outcome.ok) throw new Problem(outcome.code);
      return reply.code(201).send({ token: outcome.token, expiresAt: outcome.expiresAt.toISOString() });
    },
  );

  scoped(app, (authenticated) => {
    authenticated.addHook('onRequest', requireDeveloper(developers));
    authenticated.get(
      '/v1/developers/me',
      { schema: { response: { 200: DeveloperView } } },
      async (request) => developerJson(developerOf(request)),
    );
    authenticated.delete(
      '/v1/developers/sessions/current',
      { schema: { response: { 204: NoContent } } },
      async (request, reply) => {
        await developers.logOut(bearer(request) ?? '');
        return reply.code(204).send();
      },
    );
  });
}
