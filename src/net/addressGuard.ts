import { promises as dns } from 'node:dns';
import ipaddr from 'ipaddr.js';

/**
 * SSRF guard for outbound requests to URLs that strangers supply (image URLs in a CSV, webhook URLs).
 *
 * Every address a hostname resolves to must be a public unicast address, and the caller must connect
 * to exactly the addresses returned here (see safeFetch's pinned connector), so DNS rebinding between
 * the check and the connection cannot redirect traffic to an internal address.
 *
 * Choices where the contract is silent:
 * - IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is judged by its IPv4 address: `::ffff:8.8.8.8` is public,
 *   `::ffff:127.0.0.1` is loopback.
 * - NAT64 well-known prefix `64:ff9b::/96` is judged by the embedded IPv4 address (so DNS64 networks still
 *   reach public IPv4 hosts, while `64:ff9b::a00:1` = 10.0.0.1 is refused). The local-use NAT64 prefix
 *   `64:ff9b:1::/48` is refused outright.
 * - Other IPv4-embedding forms (6to4 `2002::/16`, Teredo `2001::/32`, IPv4-compatible `::/96`,
 *   IPv4-translated `::ffff:0:0:0/96`) are refused outright.
 * - IPv6 outside the global unicast block `2000::/3` is refused (nothing public lives there).
 * - `localhost` and `*.localhost` (RFC 6761) are refused as loopback without asking DNS.
 * - A host that resolves to no address is refused with BlockedAddressError.
 */

export type Resolver = (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]>;

export interface AddressGuardOptions {
  allowPrivateNetworks: boolean;
  resolver?: Resolver;
  /** host:port or hostname entries treated as public (tests mark their own loopback server allowed) */
  allowHosts?: string[];
}

export class BlockedAddressError extends Error {
  override name = 'BlockedAddressError';
  code = 'BLOCKED_ADDRESS' as const;
}

export interface AddressGuard {
  /** Resolves url's host, checks every address; returns the addresses to connect to (pinned) or throws BlockedAddressError. Also rejects non-http(s) schemes. */
  resolve(url: URL): Promise<{ address: string; family: 4 | 6 }[]>;
}

export const defaultResolver: Resolver = async (hostname) => {
  const results = await dns.lookup(hostname, { all: true, verbatim: true });
  return results.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
};

const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR('64:ff9b::/96');
const IPV4_COMPATIBLE = ipaddr.IPv6.parseCIDR('::/96');
const GLOBAL_UNICAST_V6 = ipaddr.IPv6.parseCIDR('2000::/3');

function parseIp(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  let text = ip.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  // Only canonical literals: ipaddr.js also accepts "0x7f.1"-style IPv4, which no resolver hands back.
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (ipaddr.IPv6.isValid(text)) return ipaddr.IPv6.parse(text);
  return undefined;
}

function embeddedV4(v6: ipaddr.IPv6): ipaddr.IPv4 {
  const b = v6.toByteArray();
  return new ipaddr.IPv4([b[12]!, b[13]!, b[14]!, b[15]!]);
}

/** The ipaddr.js range name, with the extra rules above; 'unicast' means public. */
function classify(addr: ipaddr.IPv4 | ipaddr.IPv6): string {
  if (addr.kind() === 'ipv4') return addr.range();
  const v6 = addr as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().range();
  if (v6.match(NAT64_WELL_KNOWN)) {
    const inner = embeddedV4(v6).range();
    return inner === 'unicast' ? 'unicast' : inner;
  }
  const range = v6.range();
  if (range !== 'unicast') return range;
  if (v6.match(IPV4_COMPATIBLE)) return 'ipv4Compatible';
  if (!v6.match(GLOBAL_UNICAST_V6)) return 'reserved';
  return 'unicast';
}

/** Describes an address: 'unicast' for public ones, otherwise 'loopback', 'private', 'linkLocal', …, or 'invalid'. */
export function describeAddress(ip: string): string {
  const addr = parseIp(ip);
  return addr ? classify(addr) : 'invalid';
}

export function isPublicAddress(ip: string): boolean {
  return describeAddress(ip) === 'unicast';
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function withoutTrailingDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

function defaultPort(protocol: string): string {
  return protocol === 'https:' ? '443' : '80';
}

interface HostRule {
  hostname: string;
  port?: string;
}

/** Normalises an allowHosts entry the way WHATWG URL normalises a host ("127.1:80" → 127.0.0.1, port 80). */
function parseHostRule(entry: string): HostRule | undefined {
  const raw = entry.trim();
  if (raw === '') return undefined;
  // A bare IPv6 address without brackets: no port.
  const text = !raw.startsWith('[') && raw.split(':').length > 2 ? `[${raw}]` : raw;
  const portMatch = /:(\d+)$/.exec(text);
  const hostPart = portMatch ? text.slice(0, -portMatch[0].length) : text;
  try {
    const url = new URL(`http://${hostPart}/`);
    return { hostname: withoutTrailingDot(url.hostname.toLowerCase()), port: portMatch ? String(Number(portMatch[1])) : undefined };
  } catch {
    return undefined;
  }
}

function isLocalhostName(hostname: string): boolean {
  const h = withoutTrailingDot(hostname.toLowerCase());
  return h === 'localhost' || h.endsWith('.localhost');
}

function familyOf(addr: ipaddr.IPv4 | ipaddr.IPv6): 4 | 6 {
  return addr.kind() === 'ipv4' ? 4 : 6;
}

export function createAddressGuard(opts: AddressGuardOptions): AddressGuard {
  const resolver = opts.resolver ?? defaultResolver;
  const rules = (opts.allowHosts ?? []).map(parseHostRule).filter((r): r is HostRule => r !== undefined);

  function isAllowedHost(url: URL): boolean {
    const hostname = withoutTrailingDot(url.hostname.toLowerCase());
    const port = url.port || defaultPort(url.protocol);
    return rules.some((r) => r.hostname === hostname && (r.port === undefined || r.port === port));
  }

  function refuse(hostname: string, address: string, kind: string, literal: boolean): never {
    const what = literal ? `${hostname} is` : `${hostname} resolves to ${address}`;
    throw new BlockedAddressError(`${what} (${kind}), which is not a public address`);
  }

  return {
    async resolve(url: URL) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new BlockedAddressError(`only http and https URLs may be fetched, not ${url.protocol}`);
      }
      const hostname = url.hostname;
      if (hostname === '') throw new BlockedAddressError('the URL has no host');
      const trusted = opts.allowPrivateNetworks || isAllowedHost(url);

      // Literal addresses: WHATWG URL has already turned 127.1, 2130706433, 0x7f000001, … into dotted
      // decimal and compressed IPv6, so one parse decides without DNS.
      const literal = parseIp(stripBrackets(hostname));
      if (literal) {
        const text = stripBrackets(hostname);
        if (!trusted) {
          const kind = classify(literal);
          if (kind !== 'unicast') refuse(text, text, kind, true);
        }
        return [{ address: literal.toString(), family: familyOf(literal) }];
      }

      if (!trusted && isLocalhostName(hostname)) refuse(hostname, hostname, 'loopback', true);

      const results = await resolver(hostname);
      if (results.length === 0) {
        throw new BlockedAddressError(`${hostname} resolves to no address`);
      }
      const pinned: { address: string; family: 4 | 6 }[] = [];
      for (const r of results) {
        const addr = parseIp(r.address);
        if (!addr) refuse(hostname, r.address, 'invalid', false);
        if (!trusted) {
          const kind = classify(addr);
          if (kind !== 'unicast') refuse(hostname, r.address, kind, false);
        }
        pinned.push({ address: addr.toString(), family: familyOf(addr) });
      }
      return pinned;
    },
  };
}
