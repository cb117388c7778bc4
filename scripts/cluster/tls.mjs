// TLS at the edge of the native cluster: which certificate nginx serves, and a self-signed one
// for local use when none is configured. Node built-ins and the openssl command only.
import { spawnSync } from 'node:child_process';
import { get } from 'node:https';
import { rootCertificates } from 'node:tls';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * NGINX_TLS: `on` (HTTPS on the cluster's port) or `off` (plain HTTP there, for a deployment
 * that terminates TLS in front of nginx, and for measuring what TLS costs). NGINX_TLS_CERT and
 * NGINX_TLS_KEY: your own certificate (PEM, the chain in the certificate file) and key; without
 * them a self-signed certificate is made in the data folder. NGINX_HTTP_PORT: a plain-HTTP port
 * that only redirects to HTTPS (308, so a POST stays a POST); unset, plain HTTP is off.
 */
export function tlsSettings(env = process.env) {
  const mode = env.NGINX_TLS ?? 'on';
  if (mode !== 'on' && mode !== 'off') throw new Error(`NGINX_TLS must be on or off, not "${mode}"`);
  const cert = env.NGINX_TLS_CERT || undefined;
  const key = env.NGINX_TLS_KEY || undefined;
  if (Boolean(cert) !== Boolean(key)) throw new Error('NGINX_TLS_CERT and NGINX_TLS_KEY go together: set both, or neither for a self-signed certificate');
  const httpPort = env.NGINX_HTTP_PORT ? Number(env.NGINX_HTTP_PORT) : undefined;
  if (httpPort !== undefined && !(Number.isInteger(httpPort) && httpPort > 0 && httpPort < 65_536)) throw new Error(`NGINX_HTTP_PORT must be a port number, not "${env.NGINX_HTTP_PORT}"`);
  if (httpPort !== undefined && mode === 'off') throw new Error('NGINX_HTTP_PORT redirects plain HTTP to HTTPS: it needs NGINX_TLS=on');
  return { enabled: mode === 'on', cert: cert && resolve(cert), key: key && resolve(key), httpPort };
}

/** Days a generated certificate is valid; one that expires within a month is made again. */
const VALID_DAYS = 825;

function openssl(args) {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`openssl is needed for a self-signed certificate (apt-get install -y openssl), or set NGINX_TLS_CERT and NGINX_TLS_KEY: ${r.error.message}`);
  return r;
}

/**
 * The certificate and key nginx serves: the configured ones (checked to exist), or a self-signed
 * certificate for 127.0.0.1, ::1 and localhost under `<dataDir>/tls/`, made once and reused
 * until a month before it expires. Returns the paths and whether the certificate is self-signed.
 */
export function ensureCertificate(dataDir, settings) {
  if (settings.cert) {
    for (const f of [settings.cert, settings.key]) if (!existsSync(f)) throw new Error(`${f} (NGINX_TLS_CERT / NGINX_TLS_KEY) does not exist`);
    return { cert: settings.cert, key: settings.key, selfSigned: false };
  }
  const dir = join(dataDir, 'tls');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const fresh = existsSync(cert) && existsSync(key) && openssl(['x509', '-checkend', String(30 * 86_400), '-noout', '-in', cert]).status === 0;
  if (!fresh) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const r = openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', String(VALID_DAYS),
      '-subj', '/CN=meter-intake local',
      '-addext', 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost',
      // A server certificate, not a CA (openssl's defaults would make it one).
      '-addext', 'basicConstraints=critical,CA:FALSE',
      '-addext', 'keyUsage=critical,digitalSignature',
      '-addext', 'extendedKeyUsage=serverAuth',
    ]);
    if (r.status !== 0) throw new Error(`openssl could not make a self-signed certificate: ${r.stderr}`);
  }
  chmodSync(key, 0o600);
  return { cert, key, selfSigned: true };
}

/** The certificate's SHA-256 fingerprint, as browsers and `openssl x509 -fingerprint` show it. */
export function fingerprintOf(certFile) {
  const r = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', certFile]);
  return r.status === 0 ? r.stdout.trim().replace(/^.*=/, '') : undefined;
}

/**
 * GET over HTTPS for the supervisor's own probes: the chain must verify against the system's CAs
 * plus `caFile` (the cluster's certificate), but not the name, since the probe asks for
 * 127.0.0.1 and a real certificate names the public host. The status code, or an error.
 */
export function httpsStatus(url, caFile, timeoutMs = 1_000) {
  return new Promise((resolveStatus, reject) => {
    const req = get(url, { ca: [...rootCertificates, readFileSync(caFile, 'utf8')], checkServerIdentity: () => undefined, timeout: timeoutMs }, (res) => {
      res.resume();
      resolveStatus(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
