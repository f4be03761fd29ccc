// The API reference: an OpenAPI 3.1 document generated from the route schemas (`/openapi.json`) and an
// interactive page over it (`/docs`). Every operation lists the problem+json errors it can answer with,
// and the security scheme it needs.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { App } from './app.ts';

const PROBLEM = {
  type: 'object',
  required: ['type', 'title', 'status', 'code'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string', description: 'Stable error code; see docs/errors.md' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    errors: {
      type: 'array',
      items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } },
    },
  },
} as const;

export type SecurityScheme = 'operatorToken' | 'accessToken' | 'developerToken' | 'customerSession';

const SCHEME = Symbol('security scheme');

/**
 * Marks an onRequest hook as the check of `scheme`, so a route that names the hook in its options is
 * documented with that scheme whatever its path.
 */
export function checks<Hook extends object>(scheme: SecurityScheme, hook: Hook): Hook {
  return Object.assign(hook, { [SCHEME]: scheme });
}

function schemeOfHooks(hooks: unknown): SecurityScheme | undefined {
  for (const hook of Array.isArray(hooks) ? hooks.flat() : [hooks]) {
    const scheme = (hook as { [SCHEME]?: SecurityScheme } | undefined)?.[SCHEME];
    if (scheme) return scheme;
  }
  return undefined;
}

/**
 * Which security scheme a route needs: the one its own onRequest hooks check, or else, for routes whose
 * check is a hook of their whole scope (operator, developer and customer APIs), the one of its path.
 */
function securityOf(url: string, hooks: unknown): Record<string, string[]>[] | undefined {
  const marked = schemeOfHooks(hooks);
  if (marked) return [{ [marked]: [] }];
  if (
    url.startsWith('/v1/ledger') ||
    url.startsWith('/v1/admin') ||
    url.startsWith('/v1/audit') ||
    url.startsWith('/v1/sandbox')
  )
    return [{ operatorToken: [] }];
  if (url.startsWith('/v1/consents')) return [{ accessToken: [] }];
  if (url.startsWith('/v1/me/')) return [{ customerSession: [] }];
  if (url === '/v1/developers' || url === '/v1/developers/sessions') return undefined;
  if (url.startsWith('/v1/developers') || url.startsWith('/v1/apps') || url === '/v1/plans')
    return [{ developerToken: [] }];
  return undefined;
}

// Served by oidc-provider (documented by its own discovery document) or HTML pages, not the JSON API.
const HIDDEN = [
  /^\/oauth\//,
  /^\/\.well-known\//,
  /^\/interaction\//,
  /^\/me\//,
  /^\/open-account$/,
  /^\/metrics$/,
];

export function registerOpenApi(app: App, options: { publicUrl?: string }): void {
  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'apibank',
        version: '1.0.0',
        description:
          'An open-source API bank. Errors are application/problem+json (RFC 9457) with a stable `code`. OAuth 2.0 / OpenID Connect metadata: /.well-known/openid-configuration.',
      },
      ...(options.publicUrl ? { servers: [{ url: options.publicUrl }] } : {}),
      components: {
        securitySchemes: {
          operatorToken: { type: 'http', scheme: 'bearer', description: 'The operator (admin) token' },
          developerToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'A developer session token from POST /v1/developers/sessions',
          },
          accessToken: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description:
              'An OAuth access token (RFC 9068); DPoP-bound tokens use the DPoP scheme with a DPoP proof (RFC 9449)',
          },
          customerSession: {
            type: 'apiKey',
            in: 'cookie',
            name: 'apibank_customer',
            description: 'Set by signing in at /me/consents',
          },
        },
        schemas: { Problem: PROBLEM as never },
      },
    },
    transform: ({ schema, url, route }) => {
      const hidden = HIDDEN.some((pattern) => pattern.test(url));
      const security = securityOf(url, route?.onRequest);
      const problem = {
        description: 'Problem (RFC 9457)',
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      };
      const transformed = {
        ...(schema ?? {}),
        ...(hidden ? { hide: true } : {}),
        ...(security ? { security } : {}),
        response: {
          ...((schema as { response?: object } | undefined)?.response ?? {}),
          '4XX': problem,
          '5XX': problem,
        },
      };
      return { schema: transformed as never, url };
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
