// panva's oidc-provider as a real authorization server for jwt_guard's tests, started by
// tests/oidc_provider.py on a free loopback port. It issues opaque access tokens
// (client_credentials grant) for one resource server, introspects them (RFC 7662) for clients
// authenticating with client_secret_basic, client_secret_post or private_key_jwt, answers
// RFC 9701 JWT introspection responses when asked, and revokes tokens (RFC 7009).
//
// Usage: node server.mjs CONFIG.json   (the config: issuer, port, resource, audience, scope,
// clients, jwks). Prints one line "ready ISSUER" on standard output once it listens.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const provider = new Provider(config.issuer, {
  clients: config.clients,
  cookies: { keys: config.cookieKeys },
  jwks: config.jwks,
  scopes: config.scope.split(' '),
  ttl: { ClientCredentials: config.ttl ?? 600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // RFC 7662; any authenticated client may introspect any token (our resource servers).
    introspection: { enabled: true, allowedPolicy: async () => true },
    jwtIntrospection: { enabled: true }, // RFC 9701
    revocation: { enabled: true, allowedPolicy: async () => true }, // RFC 7009
    resourceIndicators: {
      enabled: true,
      // Every client_credentials token is for our one resource server, opaque.
      defaultResource: async () => config.resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== config.resource) throw new Provider.errors.InvalidTarget();
        return {
          scope: config.scope,
          audience: config.audience,
          accessTokenFormat: 'opaque',
          accessTokenTTL: config.ttl ?? 600,
        };
      },
    },
  },
});

const server = createServer(provider.callback());
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${config.issuer}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
