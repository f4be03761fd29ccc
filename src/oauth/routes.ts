import type Provider from 'oidc-provider';
import { type App, scoped } from '../http/app.ts';
import { asIssuerRequest } from './provider.ts';

/**
 * Hands the authorization server's endpoints to oidc-provider. Inside this scope Fastify parses no body:
 * the provider reads the raw request itself and refuses one already consumed.
 */
export function registerOAuthRoutes(app: App, provider: Provider): void {
  const handle = provider.callback();
  scoped(app, (oauth) => {
    oauth.removeAllContentTypeParsers();
    oauth.addContentTypeParser('*', (_request, _payload, done) => done(null));
    const toProvider = async (
      request: { raw: import('node:http').IncomingMessage; id: string },
      reply: import('fastify').FastifyReply,
    ) => {
      // The provider's audit middleware names the call by this server's request id.
      request.raw.headers['x-request-id'] = request.id;
      asIssuerRequest(request.raw, provider.issuer);
      reply.header('x-request-id', request.id);
      // A hijacked reply skips Fastify's sending: the headers every response carries (request id, security
      // headers) go onto the raw response here, before the provider writes its own.
      for (const [name, value] of Object.entries(reply.getHeaders())) {
        if (value !== undefined) reply.raw.setHeader(name, value);
      }
      reply.hijack();
      await handle(request.raw, reply.raw);
    };
    oauth.all('/oauth/*', toProvider);
    oauth.all('/.well-known/*', toProvider);
  });
}
