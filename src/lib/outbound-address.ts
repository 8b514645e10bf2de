import dns from 'node:dns';
import ipaddr from 'ipaddr.js';

/**
 * Which addresses the gateway may open a connection to on behalf of a tenant (webhook receivers,
 * carrier SMS endpoints). A policy is asked about one canonical IP literal at a time: the
 * hostname of a parsed URL, or an address a resolver answered.
 */
export type AddressPolicy = (address: string) => boolean;

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Name resolution for outbound connections; injectable so tests can play a rebinding DNS. */
export type ResolveHost = (hostname: string) => Promise<ResolvedAddress[]>;

/** The system resolver (getaddrinfo, as node:http would use), every address of the name. */
export const systemResolveHost: ResolveHost = (hostname) =>
  dns.promises.lookup(hostname, { all: true, verbatim: true });

/** Sandbox mode: a developer's receiver on loopback or the LAN is the point. */
export const anyAddress: AddressPolicy = () => true;

type Address = ipaddr.IPv4 | ipaddr.IPv6;

// Everything outside 2000::/3 is unallocated, local or special; inside it ipaddr knows the rest.
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
// RFC 6052 well-known NAT64 prefix: a NAT64 gateway turns it into the embedded IPv4 address.
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

function parseStrict(address: string): Address | null {
  // Zone ids only make sense for link-local addresses, which are refused anyway.
  if (address.includes('%')) return null;
  // Only the canonical dotted quad: "0177.0.0.1" and "2130706433" are what URL parsing and the
  // resolver normalise away; anything else arriving here is refused rather than interpreted.
  if (ipaddr.IPv4.isValidFourPartDecimal(address)) return ipaddr.IPv4.parse(address);
  if (ipaddr.IPv6.isValid(address)) return ipaddr.IPv6.parse(address);
  return null;
}

function lastFourBytes(ip: ipaddr.IPv6): ipaddr.IPv4 {
  const bytes = ip.toByteArray();
  return new ipaddr.IPv4(bytes.slice(12, 16));
}

function isPublicIPv4(ip: ipaddr.IPv4): boolean {
  // ipaddr's `unicast` is what is left after unspecified 0/8, broadcast, multicast, link-local
  // (169.254.169.254 included), loopback, CGNAT 100.64/10, RFC 1918, the reserved,
  // documentation and benchmarking ranges (192.0.0/24, 192.0.2/24, 192.88.99/24, 198.18/15,
  // 198.51.100/24, 203.0.113/24, 240/4), AS112 and AMT.
  return ip.range() === 'unicast';
}

function isPublicIPv6(ip: ipaddr.IPv6): boolean {
  // IPv4-mapped (::ffff:a.b.c.d) reaches the embedded IPv4 address: judge that.
  if (ip.isIPv4MappedAddress()) return isPublicIPv4(ip.toIPv4Address());
  // NAT64 reaches the embedded IPv4 address too; the local-use 64:ff9b:1::/48 is refused below.
  if (ip.match(NAT64_WELL_KNOWN)) return isPublicIPv4(lastFourBytes(ip));
  // IPv4-compatible (::a.b.c.d, deprecated by RFC 4291), ::, ::1, ULA fc00::/7, link-local,
  // site-local fec0::/10, multicast, discard 100::/64 and IPv4-translated ::ffff:0:0:0/96 all
  // lie outside 2000::/3. Inside it, `unicast` excludes 6to4 2002::/16 and Teredo 2001::/32
  // (their embedded IPv4 addresses cannot be trusted to be public, and no receiver needs them),
  // documentation, benchmarking, ORCHID and the other special ranges.
  return ip.match(GLOBAL_UNICAST_V6) && ip.range() === 'unicast';
}

/** True only for a public unicast IPv4 or IPv6 address, in canonical notation. */
export function isPublicUnicast(address: string): boolean {
  const ip = parseStrict(address);
  if (!ip) return false;
  return ip.kind() === 'ipv4' ? isPublicIPv4(ip as ipaddr.IPv4) : isPublicIPv6(ip as ipaddr.IPv6);
}

/**
 * Parses a comma-separated list of CIDR ranges ("10.20.0.0/16, fd00:1::/64"). Throws on a bad
 * entry, naming it.
 */
export function parseNetworks(list: string): [Address, number][] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      if (!ipaddr.isValidCIDR(s)) throw new Error(`"${s}" is not a CIDR range`);
      return ipaddr.parseCIDR(s);
    });
}

/** Public unicast, or inside one of `networks` (operator-approved private interconnects). */
export function publicOrWithin(networks: readonly [Address, number][]): AddressPolicy {
  if (networks.length === 0) return isPublicUnicast;
  return (address) => {
    if (isPublicUnicast(address)) return true;
    const ip = parseStrict(address);
    if (!ip) return false;
    const candidates: Address[] = [ip];
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
      candidates.push((ip as ipaddr.IPv6).toIPv4Address());
    }
    return networks.some(([net, bits]) =>
      candidates.some((c) => c.kind() === net.kind() && c.match(net, bits)),
    );
  };
}
