// `npm run clients -- <command>`: manages the clients that may call the API and their keys.
//   create --name NAME --scopes submit,read:own [--rate-limit N] [--key-stdin] [--json]
//   list [--json]
//   revoke --name NAME | --id UUID
// A new key is printed once and stored nowhere but as its SHA-256 (api_clients.key_hash).
// --key-stdin reads the key from standard input instead of generating one (for keys made by a
// secrets manager; it must have the same shape: mik_ and 43 base64url characters).
// The database is the configured one (DATABASE_URL or COCKROACH_URL); scripts/clients.mjs points
// it at the cluster `npm start` runs here when neither is set.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadConfigOrExit } from '#libs/config';
import { ApiClientStore, type ApiClientListing, CLIENT_SCOPES, type ClientScope, isClientScope } from '#libs/database';

const USAGE = `usage: npm run clients -- create --name NAME --scopes ${CLIENT_SCOPES.join(',')} [--rate-limit N] [--key-stdin] [--json]
       npm run clients -- list [--json]
       npm run clients -- revoke --name NAME | --id UUID
scopes: submit (POST readings), read:own (the client's own readings), read:all (every reading), admin`;

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    name: { type: 'string' },
    id: { type: 'string' },
    scopes: { type: 'string' },
    'rate-limit': { type: 'string' },
    'key-stdin': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

const command = positionals[0];
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!command || !['create', 'list', 'revoke'].includes(command)) fail(command ? `unknown command ${command}` : 'a command is needed');

const config = loadConfigOrExit();
const pool = new pg.Pool({ connectionString: config.db.url, max: 1, connectionTimeoutMillis: 10_000 });
const store = new ApiClientStore(pool);

function row(c: ApiClientListing): string[] {
  const at = (d: Date | null) => (d ? d.toISOString().replace(/\.\d+Z$/, 'Z') : '-');
  return [c.name, c.id, c.keyPrefix + '…', c.scopes.join(','), c.rateLimit === null ? 'default' : String(c.rateLimit), at(c.createdAt), at(c.revokedAt), at(c.lastUsedAt)];
}

try {
  if (command === 'create') {
    const name = o.name?.trim();
    if (!name || name.length > 64 || !/^[A-Za-z0-9._-]+$/.test(name)) fail('--name: 1-64 characters of A-Z, a-z, 0-9, ., _ or -');
    // revoke takes a name or an id: a name shaped like an id could never be revoked by name.
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(name)) fail('--name: must not look like a client id (a UUID)');
    const scopes = (o.scopes ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (scopes.length === 0) fail('--scopes: at least one scope');
    const unknown = scopes.filter((s) => !isClientScope(s));
    if (unknown.length) fail(`--scopes: unknown scope ${unknown.join(', ')}`);
    let rateLimit: number | null = null;
    if (o['rate-limit'] !== undefined) {
      rateLimit = Number(o['rate-limit']);
      if (!Number.isInteger(rateLimit) || rateLimit < 1 || rateLimit > 2_000_000_000) fail('--rate-limit: a whole number of requests per rate-limit window (RATE_LIMIT_WINDOW_MS)');
    }
    const key = o['key-stdin'] ? readFileSync(0, 'utf8').trim() : undefined;
    const { client, key: issued } = await store.create({ name, scopes: [...new Set(scopes)] as ClientScope[], rateLimit, ...(key ? { key } : {}) }).catch((err: unknown) => {
      if ((err as { code?: string }).code === '23505') fail(`a client named ${name} exists already (names are unique; revoke it and pick another name)`);
      throw err;
    });
    if (o.json) console.log(JSON.stringify({ ...client, key: issued }));
    else {
      console.log(`created client ${client.name} (${client.id}), scopes ${client.scopes.join(',')}, rate limit ${client.rateLimit ?? 'default'}`);
      console.log(`key (shown once; only its hash is stored): ${issued}`);
      console.log(`use it as: Authorization: Bearer ${issued}`);
    }
  } else if (command === 'list') {
    const clients = await store.list();
    if (o.json) console.log(JSON.stringify(clients));
    else {
      const rows = [['name', 'id', 'key', 'scopes', 'rate limit', 'created', 'revoked', 'last used'], ...clients.map(row)];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) console.log(r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd());
    }
  } else {
    const target = o.id ?? o.name;
    if (!target) fail('revoke needs --name or --id');
    const n = await store.revoke(target);
    if (n === 0) {
      console.error(`no active client ${target}`);
      process.exitCode = 1;
    } else console.log(`revoked ${target}: the API refuses its key within AUTH_CACHE_TTL_MS (5 s by default)`);
  }
} finally {
  await pool.end();
}
