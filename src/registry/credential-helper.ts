/**
 * Docker credential helpers: `docker-credential-NAME get` reads a server URL on stdin and prints
 * `{"ServerURL","Username","Secret"}` (docker-credential-helpers protocol).
 */
import { spawn } from 'node:child_process';
import { AirlockError } from '../errors.js';

/** What a helper returned. `username` `<token>` means `secret` is an identity (refresh) token. */
export interface HelperCredentials {
  username: string;
  secret: string;
}

/** Runs a helper; injectable for tests. Resolves undefined when the helper has nothing for the server. */
export type HelperRunner = (helper: string, serverUrl: string, env: Record<string, string | undefined>) => Promise<HelperCredentials | undefined>;

/**
 * A helper may unlock a keychain or ask a vault over the network; 30 s is ample for that and
 * still ends a helper that hangs (e.g. waiting for a GUI prompt on a headless host).
 */
export const HELPER_TIMEOUT_MS = 30_000;

/** A helper's answer is a few hundred bytes; 64 KiB caps a misbehaving one. */
const MAX_HELPER_OUTPUT_BYTES = 64 * 1024;

/** Helper names come from config files; allow only what a program name needs. */
const HELPER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function helperError(helper: string, serverUrl: string, why: string, cause?: unknown): AirlockError {
  return new AirlockError('AUTH', `credential helper docker-credential-${helper} failed for ${serverUrl}: ${why}`, {
    subject: serverUrl,
    hint: `check the helper (try: echo ${serverUrl} | docker-credential-${helper} get) or pass --creds USER:PASS`,
    cause,
  });
}

function parseHelperOutput(helper: string, serverUrl: string, stdout: string): HelperCredentials {
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(stdout) as typeof doc;
  } catch (err) {
    throw helperError(helper, serverUrl, 'its output is not JSON', err);
  }
  if (typeof doc.Username !== 'string' || typeof doc.Secret !== 'string') {
    throw helperError(helper, serverUrl, 'its output lacks Username or Secret');
  }
  return { username: doc.Username, secret: doc.Secret };
}

/**
 * Run `docker-credential-NAME get`, found on `env.PATH`. A missing helper, or one that says
 * "credentials not found", means no credentials; any other failure is an AUTH error.
 */
export const runCredentialHelper: HelperRunner = (helper, serverUrl, env) => {
  if (!HELPER_NAME_RE.test(helper)) {
    return Promise.reject(helperError(helper, serverUrl, 'the helper name is not a valid program name'));
  }
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${helper}`, ['get'], {
      env: env as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: HELPER_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    const collect = (into: 'out' | 'err') => (chunk: Buffer) => {
      if (into === 'out' && stdout.length < MAX_HELPER_OUTPUT_BYTES) stdout += chunk.toString('utf8');
      if (into === 'err' && stderr.length < MAX_HELPER_OUTPUT_BYTES) stderr += chunk.toString('utf8');
    };
    child.stdout.on('data', collect('out'));
    child.stderr.on('data', collect('err'));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') resolve(undefined);
      else reject(helperError(helper, serverUrl, err.message, err));
    });
    child.on('close', (code, signal) => {
      if (code === 0) {
        try {
          resolve(parseHelperOutput(helper, serverUrl, stdout));
        } catch (err) {
          reject(err);
        }
        return;
      }
      const said = `${stdout}\n${stderr}`;
      if (/credentials not found/i.test(said)) {
        resolve(undefined);
        return;
      }
      const firstLine = said.trim().split('\n')[0]?.slice(0, 200) ?? '';
      reject(helperError(helper, serverUrl, signal !== null ? `killed by ${signal}` : `exit status ${code}: ${firstLine}`));
    });
    child.stdin.on('error', () => {
      // A helper that exits without reading stdin: its exit status tells the story.
    });
    child.stdin.end(serverUrl);
  });
};
