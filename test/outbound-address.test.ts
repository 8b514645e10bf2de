import { describe, expect, it } from 'vitest';
import { isPublicUnicast, parseNetworks, publicOrWithin } from '../src/lib/outbound-address.js';

/** Addresses the gateway may connect to outside sandbox. */
const PUBLIC = [
  '8.8.8.8',
  '1.1.1.1',
  '93.184.215.14',
  '100.63.255.255', // just below CGNAT
  '100.128.0.0', // just above CGNAT
  '172.15.255.255', // just below 172.16/12
  '172.32.0.1', // just above 172.16/12
  '169.253.255.255',
  '198.17.255.255', // just below benchmarking 198.18/15
  '198.20.0.1', // just above it
  '223.255.255.254',
  '2606:4700:4700::1111',
  '2001:4860:4860::8888',
  '2a00:1450:4001:80b::200e',
  '::ffff:8.8.8.8', // IPv4-mapped: the embedded address is public
  '::ffff:808:808', // the same, compressed as URL parsing writes it
  '64:ff9b::808:808', // NAT64 of 8.8.8.8
];

/** Addresses refused outside sandbox, with the range that refuses them. */
const NOT_PUBLIC: [string, string][] = [
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'this network 0/8'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback /8'],
  ['10.0.0.1', 'private 10/8'],
  ['172.16.0.1', 'private 172.16/12'],
  ['172.31.255.255', 'private 172.16/12'],
  ['192.168.1.1', 'private 192.168/16'],
  ['100.64.0.1', 'CGNAT 100.64/10'],
  ['100.127.255.254', 'CGNAT 100.64/10'],
  ['169.254.169.254', 'link-local (cloud metadata)'],
  ['169.254.0.1', 'link-local'],
  ['192.0.0.8', 'IETF protocol assignments 192.0.0/24'],
  ['192.0.2.10', 'documentation TEST-NET-1'],
  ['198.51.100.7', 'documentation TEST-NET-2'],
  ['203.0.113.9', 'documentation TEST-NET-3'],
  ['198.18.0.1', 'benchmarking 198.18/15'],
  ['198.19.255.254', 'benchmarking 198.18/15'],
  ['192.88.99.1', '6to4 relay anycast'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast (SSDP)'],
  ['240.0.0.1', 'reserved 240/4'],
  ['255.255.255.255', 'broadcast'],
  ['::', 'IPv6 unspecified'],
  ['::1', 'IPv6 loopback'],
  ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
  ['::ffff:7f00:1', 'IPv4-mapped loopback, compressed'],
  ['::ffff:a9fe:a9fe', 'IPv4-mapped 169.254.169.254'],
  ['::ffff:10.0.0.1', 'IPv4-mapped private'],
  ['::ffff:0.0.0.0', 'IPv4-mapped unspecified'],
  ['::127.0.0.1', 'IPv4-compatible (deprecated) loopback'],
  ['::7f00:1', 'IPv4-compatible, compressed'],
  ['::808:808', 'IPv4-compatible, even of a public address'],
  ['::ffff:0:7f00:1', 'IPv4-translated ::ffff:0:0:0/96'],
  ['64:ff9b::7f00:1', 'NAT64 of loopback'],
  ['64:ff9b::a00:1', 'NAT64 of 10.0.0.1'],
  ['64:ff9b::a9fe:a9fe', 'NAT64 of 169.254.169.254'],
  ['64:ff9b:1::808:808', 'local-use NAT64 64:ff9b:1::/48'],
  ['2002:7f00:1::1', '6to4 embedding loopback'],
  ['2002:808:808::1', '6to4, even embedding a public address'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
  ['fe80::1', 'link-local'],
  ['febf::1', 'link-local fe80::/10 upper end'],
  ['fec0::1', 'site-local (deprecated)'],
  ['fc00::1', 'unique-local fc00::/7'],
  ['fd00:ec2::254', 'unique-local (cloud metadata v6)'],
  ['ff02::1', 'multicast'],
  ['ff05::1:3', 'multicast'],
  ['100::1', 'discard-only 100::/64'],
  ['2001:db8::1', 'documentation'],
  ['3fff::1', 'documentation 3fff::/20'],
  ['2001:2::1', 'benchmarking 2001:2::/48'],
  ['2001:10::1', 'ORCHID'],
  ['2001:20::1', 'ORCHIDv2'],
  ['5f00::1', 'segment routing'],
  ['4000::1', 'outside 2000::/3, unallocated'],
  ['fe80::1%eth0', 'a zone id'],
  // Not canonical literals: whatever reads them as an address must not be let through.
  ['0177.0.0.1', 'octal IPv4 spelling'],
  ['0x7f.0.0.1', 'hex IPv4 spelling'],
  ['2130706433', 'decimal IPv4 spelling'],
  ['127.1', 'short IPv4 spelling'],
  ['8.8.8.010', 'leading zero, even of a public address'],
  ['localhost', 'a name, not an address'],
  ['', 'empty'],
  ['not-an-ip', 'garbage'],
];

describe('the outbound address policy (SPEC §10)', () => {
  it('covers at least 40 addresses', () => {
    expect(PUBLIC.length + NOT_PUBLIC.length).toBeGreaterThanOrEqual(40);
  });

  it.each(PUBLIC)('allows the public unicast address %s', (address) => {
    expect(isPublicUnicast(address)).toBe(true);
  });

  it.each(NOT_PUBLIC)('refuses %s (%s)', (address) => {
    expect(isPublicUnicast(address)).toBe(false);
  });

  it('operator-named private networks are allowed for carriers, and nothing else is', () => {
    const allows = publicOrWithin(parseNetworks('10.20.0.0/16, fd00:1::/64'));
    expect(allows('10.20.3.4')).toBe(true);
    expect(allows('::ffff:10.20.3.4')).toBe(true);
    expect(allows('fd00:1::5')).toBe(true);
    expect(allows('8.8.8.8')).toBe(true);
    expect(allows('10.21.0.1')).toBe(false);
    expect(allows('fd00:2::5')).toBe(false);
    expect(allows('127.0.0.1')).toBe(false);
    expect(allows('169.254.169.254')).toBe(false);
    expect(publicOrWithin([])('10.20.3.4')).toBe(false);
  });

  it('a malformed network list is refused, naming the entry', () => {
    expect(() => parseNetworks('10.0.0.0/8,banana')).toThrow(/banana/);
    expect(() => parseNetworks('10.0.0.0/33')).toThrow(/10\.0\.0\.0\/33/);
    expect(parseNetworks('')).toEqual([]);
  });
});
