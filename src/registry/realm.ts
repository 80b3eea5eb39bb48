/**
 * Where a token realm may receive credentials.
 *
 * A registry names its token service in its challenge (`Bearer realm="…"`), and clients send the
 * registry's credentials there (Basic, or an identity token in a refresh-token grant). The realm is
 * chosen by the registry, so a hostile or misconfigured registry can point it anywhere. The rule:
 *
 * - the registry's own origin (scheme, host and port): always, as for any request to the registry;
 * - another origin over HTTPS: allowed, since real registries do this (Docker Hub's realm is
 *   `https://auth.docker.io/token`, its API `registry-1.docker.io`); `--debug` says so;
 * - another origin over plain HTTP: never. Behind an HTTPS registry that would put the password in
 *   clear text on the wire; behind a plain-HTTP registry the operator accepted clear text for that
 *   one host and port (`--plain-http`), not for wherever the registry points.
 *
 * Without credentials to send, any http(s) realm is used: an anonymous token is no secret.
 */
import { AirlockError } from '../errors.js';
import type { Credentials } from './credentials.js';

/** How a realm relates to the registry that named it. */
export type RealmPlace = 'same-origin' | 'other-https' | 'other-plain-http';

/** Where `realm` is, seen from the registry at `registryOrigin` (`https://registry-1.docker.io`). */
export function realmPlace(realm: URL, registryOrigin: string): RealmPlace {
  if (realm.origin === registryOrigin) return 'same-origin';
  return realm.protocol === 'https:' ? 'other-https' : 'other-plain-http';
}

/** True when a token request with these credentials carries a secret. */
export function sendsSecret(credentials: Credentials | undefined): boolean {
  if (credentials === undefined) return false;
  return credentials.identityToken !== undefined || (credentials.username !== undefined && credentials.password !== undefined);
}

/** A realm URL for messages: its origin and path, never a query or user info, at most 100 characters. */
export function showRealm(realm: URL): string {
  const text = `${realm.protocol}//${realm.host}${realm.pathname}`;
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

/**
 * Throw when credentials must not go to `realm`; otherwise return where it is (for the caller's
 * debug note).
 *
 * @param host the registry as the operator named it, for the message
 */
export function checkRealm(realm: URL, registryOrigin: string, host: string, credentials: Credentials | undefined): RealmPlace {
  const place = realmPlace(realm, registryOrigin);
  if (place !== 'other-plain-http' || !sendsSecret(credentials)) return place;
  const registryTls = registryOrigin.startsWith('https:');
  const source = credentials?.source ?? 'credentials';
  return refuse(realm, host, source, registryTls);
}

function refuse(realm: URL, host: string, source: string, registryTls: boolean): never {
  const why = registryTls
    ? `registry ${host} is HTTPS but names a plain-HTTP token realm ${showRealm(realm)}`
    : `registry ${host} names a plain-HTTP token realm on another host or port, ${showRealm(realm)}`;
  throw new AirlockError('AUTH', `${why}: airlock does not send the credentials (from ${source}) there`, {
    subject: host,
    hint: registryTls
      ? "have the registry's operator serve the token realm over HTTPS (auth.token.realm in distribution's configuration); until then only anonymous access works"
      : "credentials go in clear text only to the registry itself (--plain-http); have its operator serve the token realm over HTTPS or on the registry's own host and port",
    details: { realm: showRealm(realm), credentialSource: source },
  });
}
