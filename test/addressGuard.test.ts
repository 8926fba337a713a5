import { describe, expect, it, vi } from 'vitest';
import {
  BlockedAddressError,
  createAddressGuard,
  describeAddress,
  isPublicAddress,
  type Resolver,
} from '../src/net/addressGuard.ts';

// No network at all in this file: the resolver is always injected (and literal forms must not reach it).

const notPublic: [string, string][] = [
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.1.2.3', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.1.1', 'private'],
  ['169.254.169.254', 'linkLocal'],
  ['100.64.0.1', 'carrierGradeNat'],
  ['100.127.255.255', 'carrierGradeNat'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['224.0.0.1', 'multicast'],
  ['255.255.255.255', 'broadcast'],
  ['240.0.0.1', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['198.51.100.7', 'reserved'],
  ['203.0.113.9', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['192.0.0.8', 'reserved'],
  ['::1', 'loopback'],
  ['::', 'unspecified'],
  ['fd00::1', 'uniqueLocal'],
  ['fc00::1', 'uniqueLocal'],
  ['fe80::1', 'linkLocal'],
  ['fec0::1', 'deprecatedSiteLocal'],
  ['ff02::1', 'multicast'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:169.254.169.254', 'linkLocal'],
  ['64:ff9b::a00:1', 'private'],
  ['64:ff9b::7f00:1', 'loopback'],
  ['64:ff9b:1::808:808', 'rfc6052'],
  ['2001:db8::1', 'reserved'],
  ['2002:a00:1::1', '6to4'],
  ['2001::1', 'teredo'],
  ['::7f00:1', 'ipv4Compatible'],
  ['100::1', 'discard'],
  ['4000::1', 'reserved'],
];

const isPublic = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '[2606:4700:4700::1111]'];

describe('isPublicAddress / describeAddress', () => {
  it.each(notPublic)('%s is not public (%s)', (ip, kind) => {
    expect(isPublicAddress(ip)).toBe(false);
    expect(describeAddress(ip)).toBe(kind);
  });

  it.each(isPublic)('%s is public', (ip) => {
    expect(isPublicAddress(ip)).toBe(true);
    expect(describeAddress(ip)).toBe('unicast');
  });

  it.each(['', 'example.com', '127.1', '0x7f000001', '2130706433', '1.2.3.4.5', '::g', '999.1.1.1'])(
    '%j is not an address and so not public',
    (text) => {
      expect(isPublicAddress(text)).toBe(false);
      expect(describeAddress(text)).toBe('invalid');
    },
  );
});

function fakeResolver(answers: Record<string, { address: string; family: 4 | 6 }[]>) {
  return vi.fn<Resolver>(async (host) => {
    const answer = answers[host];
    if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return answer;
  });
}

const v4 = (address: string) => ({ address, family: 4 as const });

describe('createAddressGuard with an injected resolver', () => {
  const resolver = fakeResolver({
    'mixed.test': [v4('8.8.8.8'), v4('10.0.0.1')],
    'private.test': [v4('10.0.0.1')],
    'empty.test': [],
    'public.test': [v4('93.184.216.34'), { address: '2606:4700:4700::1111', family: 6 }],
    'mapped.test': [{ address: '::ffff:127.0.0.1', family: 6 }],
    'garbage.test': [v4('not-an-ip')],
  });
  const guard = createAddressGuard({ allowPrivateNetworks: false, resolver });

  it('refuses a host with any non-public address, naming host, address and kind', async () => {
    await expect(guard.resolve(new URL('http://mixed.test/a.jpg'))).rejects.toThrow(
      'mixed.test resolves to 10.0.0.1 (private), which is not a public address',
    );
    await expect(guard.resolve(new URL('http://private.test/a.jpg'))).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(guard.resolve(new URL('http://mapped.test/'))).rejects.toThrow('(loopback)');
    await expect(guard.resolve(new URL('http://garbage.test/'))).rejects.toThrow('(invalid)');
  });

  it('refuses a host with no address', async () => {
    await expect(guard.resolve(new URL('https://empty.test/'))).rejects.toMatchObject({
      code: 'BLOCKED_ADDRESS',
      message: expect.stringContaining('empty.test'),
    });
  });

  it('accepts and returns every address of a public host', async () => {
    await expect(guard.resolve(new URL('https://public.test/x.png'))).resolves.toEqual([
      v4('93.184.216.34'),
      { address: '2606:4700:4700::1111', family: 6 },
    ]);
  });

  it('passes resolver failures (DNS errors) through unchanged', async () => {
    await expect(guard.resolve(new URL('http://nx.test/'))).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('accepts private addresses when allowPrivateNetworks is true', async () => {
    const open = createAddressGuard({ allowPrivateNetworks: true, resolver });
    await expect(open.resolve(new URL('http://private.test/'))).resolves.toEqual([v4('10.0.0.1')]);
    await expect(open.resolve(new URL('http://127.0.0.1:8080/'))).resolves.toEqual([v4('127.0.0.1')]);
  });

  it.each(['ftp://public.test/a.jpg', 'file:///etc/passwd', 'gopher://public.test/', 'data:text/plain,hi', 'javascript:alert(1)'])(
    'refuses the non-http scheme of %s',
    async (url) => {
      const r = fakeResolver({ 'public.test': [v4('93.184.216.34')] });
      const g = createAddressGuard({ allowPrivateNetworks: true, resolver: r });
      await expect(g.resolve(new URL(url))).rejects.toBeInstanceOf(BlockedAddressError);
      expect(r).not.toHaveBeenCalled();
    },
  );

  it('WHATWG URL normalises numeric IPv4 host forms to dotted decimal', () => {
    for (const form of ['127.1', '2130706433', '0x7f000001', '017700000001', '0x7f.1', '127.0.0.1']) {
      expect(new URL(`http://${form}:81/`).hostname).toBe('127.0.0.1');
    }
    expect(new URL('http://[::ffff:127.0.0.1]/').hostname).toBe('[::ffff:7f00:1]');
  });

  const literalForms = [
    'http://127.0.0.1/',
    'http://127.1/',
    'http://2130706433/',
    'http://0x7f000001/',
    'http://017700000001/',
    'http://0.0.0.0/',
    'http://0/',
    'http://[::1]/',
    'http://[::]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:a9fe:a9fe]/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[fd00::1]/',
    'http://[fe80::1]/',
    'http://10.0.0.1/',
    'http://localhost/',
    'http://LOCALHOST./',
    'http://api.localhost:9000/',
    'https://127.0.0.1:443/',
  ];

  it.each(literalForms)('refuses %s without calling the resolver', async (url) => {
    const r = fakeResolver({});
    const g = createAddressGuard({ allowPrivateNetworks: false, resolver: r });
    const err = await g.resolve(new URL(url)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BlockedAddressError);
    expect((err as BlockedAddressError).code).toBe('BLOCKED_ADDRESS');
    expect((err as Error).message).toMatch(/not a public address/);
    expect(r).not.toHaveBeenCalled();
  });

  it('returns a public literal address without calling the resolver', async () => {
    const r = fakeResolver({});
    const g = createAddressGuard({ allowPrivateNetworks: false, resolver: r });
    await expect(g.resolve(new URL('http://8.8.8.8/'))).resolves.toEqual([v4('8.8.8.8')]);
    await expect(g.resolve(new URL('http://[2606:4700:4700::1111]:8443/'))).resolves.toEqual([
      { address: '2606:4700:4700::1111', family: 6 },
    ]);
    expect(r).not.toHaveBeenCalled();
  });
});

describe('allowHosts', () => {
  it('matches host:port exactly, so another port on the same address stays blocked', async () => {
    const r = fakeResolver({});
    const g = createAddressGuard({ allowPrivateNetworks: false, resolver: r, allowHosts: ['127.0.0.1:4100'] });
    await expect(g.resolve(new URL('http://127.0.0.1:4100/a.png'))).resolves.toEqual([v4('127.0.0.1')]);
    await expect(g.resolve(new URL('http://127.1:4100/a.png'))).resolves.toEqual([v4('127.0.0.1')]);
    await expect(g.resolve(new URL('http://127.0.0.1:4101/'))).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(g.resolve(new URL('http://127.0.0.1/'))).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(g.resolve(new URL('http://[::1]:4100/'))).rejects.toBeInstanceOf(BlockedAddressError);
  });

  it('a bare hostname entry allows every port; the name is still resolved and pinned', async () => {
    const r = fakeResolver({ 'images.test': [v4('10.9.8.7')], 'images.test.': [v4('10.9.8.7')] });
    const g = createAddressGuard({ allowPrivateNetworks: false, resolver: r, allowHosts: ['Images.Test', '[::1]:81'] });
    await expect(g.resolve(new URL('http://images.test:8080/'))).resolves.toEqual([v4('10.9.8.7')]);
    await expect(g.resolve(new URL('https://images.test./'))).resolves.toEqual([v4('10.9.8.7')]);
    expect(r).toHaveBeenCalledTimes(2);
    await expect(g.resolve(new URL('http://[::1]:81/'))).resolves.toEqual([{ address: '::1', family: 6 }]);
    await expect(g.resolve(new URL('http://[::1]:82/'))).rejects.toBeInstanceOf(BlockedAddressError);
  });

  it('default ports count as the port of a host:port entry', async () => {
    const g = createAddressGuard({ allowPrivateNetworks: false, resolver: fakeResolver({}), allowHosts: ['127.0.0.1:80'] });
    await expect(g.resolve(new URL('http://127.0.0.1/'))).resolves.toEqual([v4('127.0.0.1')]);
    await expect(g.resolve(new URL('https://127.0.0.1/'))).rejects.toBeInstanceOf(BlockedAddressError);
  });

  it('an allowed localhost entry goes through the resolver', async () => {
    const r = fakeResolver({ localhost: [v4('127.0.0.1')] });
    const g = createAddressGuard({ allowPrivateNetworks: false, resolver: r, allowHosts: ['localhost:3000'] });
    await expect(g.resolve(new URL('http://localhost:3000/'))).resolves.toEqual([v4('127.0.0.1')]);
    expect(r).toHaveBeenCalledWith('localhost');
  });
});
