// Connections the bank opens to addresses a third party gave it (webhook endpoints, an app's JWKS URI): never
// into the bank's own network (server-side request forgery). Loopback only in the sandbox, where tests and
// examples receive on this machine; private, link-local and reserved addresses never.
import { lookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import type { Mode } from './config.ts';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

// Never reached, whatever the mode: an attacker's URL must not reach the bank's own network (SSRF, Standard
// Webhooks "Server side request forgery"). IPv4-mapped IPv6 addresses are checked as IPv4.
const INTERNAL = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network", including the unspecified address (RFC 791)
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // carrier-grade NAT (RFC 6598)
  ['169.254.0.0', 16], // link-local, where cloud metadata services live (RFC 3927)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments (RFC 6890)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking (RFC 2544)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
] as const) {
  INTERNAL.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128], // unspecified
  ['::', 96], // IPv4-compatible (deprecated; would reach an IPv4 address unchecked)
  ['64:ff9b::', 96], // NAT64 (RFC 6052): translated to an arbitrary IPv4 address
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215)
  ['100::', 64], // discard-only (RFC 6666)
  ['2001::', 32], // Teredo: embeds an IPv4 address
  ['2002::', 16], // 6to4: embeds an IPv4 address
  ['fc00::', 7], // unique local (RFC 4193)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  INTERNAL.addSubnet(network, prefix, 'ipv6');
}

/** The kind of address this is when the bank will not send to it in this mode; undefined when it will. */
export function addressProblem(address: string, mode: Mode): string | undefined {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  if (LOOPBACK.check(address, family)) return mode === 'sandbox' ? undefined : 'a loopback address';
  if (INTERNAL.check(address, family)) return 'a private or reserved address';
  return undefined;
}

/**
 * A node:net `lookup` that resolves as the system does, but fails for a host with any address the bank will
 * not reach in `mode`: the connection could use any of them.
 */
export function refusingLookup(mode: Mode): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { family: options.family ?? 0, all: true, verbatim: true }, (error, addresses) => {
      const refused = addresses?.find(({ address }) => addressProblem(address, mode) !== undefined);
      const first = addresses?.[0];
      if (error || refused || !first) {
        const reason =
          error ??
          new Error(
            `${hostname} resolves to ${refused?.address ?? 'nothing'}, which the bank does not reach`,
          );
        callback(Object.assign(reason, { code: error?.code ?? 'EACCES' }), '');
        return;
      }
      if (options.all) (callback as unknown as (e: null, all: typeof addresses) => void)(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

/** A URL's host without the brackets an IPv6 address wears in it. */
export const bareHost = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1');

/**
 * What is wrong with a URL whose host is an address the bank will not reach in `mode` (`10.0.0.8 is a
 * private or reserved address`); undefined for a host name, which is checked when it is resolved.
 */
export function literalAddressProblem(url: URL, mode: Mode): string | undefined {
  const host = bareHost(url);
  const refused = isIP(host) ? addressProblem(host, mode) : undefined;
  return refused && `${host} is ${refused}`;
}

/**
 * `fetch` for a URL a third party gave: refused when its host is, or resolves to, an address the bank will
 * not reach in `mode`.
 */
export function outboundFetch(mode: Mode): typeof fetch {
  const dispatcher = new Agent({ connect: { lookup: refusingLookup(mode) } });
  return ((input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    // An address in the URL is connected to without a lookup: checked here.
    const refused = literalAddressProblem(url, mode);
    if (refused) return Promise.reject(new TypeError(`${refused}, which the bank does not reach`));
    return undiciFetch(url, { ...(init as object), dispatcher });
  }) as typeof fetch;
}
