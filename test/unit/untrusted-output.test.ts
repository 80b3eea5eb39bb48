/**
 * The choke points for untrusted text: registry errors as they are built (statusError), the CLI's
 * error renderer (human lines and --json), and result printing (table, toJson).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { renderError } from '../../src/cli/render-error.js';
import { table, toJson } from '../../src/cli/output.js';
import { AirlockError } from '../../src/errors.js';
import { statusError } from '../../src/registry/errors.js';
import { forgetSecretsForTests, registerCredentials, registerSecret } from '../../src/redact.js';

afterEach(() => forgetSecretsForTests());

const USER = 'mirror';
const PASSWORD = 'Sup3r-S3cret-pw';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
const PASSWORD_B64 = Buffer.from(PASSWORD).toString('base64');
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtaXJyb3IifQ.dG9rZW4tc2lnbmF0dXJlLWJ5dGVz';
const SECRETS = [PASSWORD, BASIC, PASSWORD_B64, TOKEN];
// Control characters a terminal acts on: ESC, CSI, BEL, CR, BS, the C1 CSI, a bidi override.
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

const subject = { host: 'r.example', repository: 'team/app', what: 'manifest team/app:v1' };

function expectClean(text: string): void {
  for (const s of SECRETS) expect(text).not.toContain(s);
  expect(text).not.toMatch(CONTROLS);
}

function login(): void {
  registerCredentials({ username: USER, password: PASSWORD });
  registerSecret(TOKEN);
}

describe('statusError on a hostile body', () => {
  const echo = JSON.stringify({
    errors: [
      {
        code: 'DENIED',
        message: `\x1b[2K\x1b[31mdenied\x1b[0m: Authorization: Basic ${BASIC}\r\u202e password ${PASSWORD}`,
        detail: { authorization: `Basic ${BASIC}`, password: PASSWORD, b64: PASSWORD_B64, bearer: `Bearer ${TOKEN}`, ['\x1b[1mkey']: 'v' },
      },
    ],
  });

  it.each([401, 403, 500, 400])('keeps secrets and controls out of the message and details of a %i', (status) => {
    login();
    const err = statusError(status, Buffer.from(echo), subject);
    expectClean(err.message);
    expectClean(JSON.stringify(err.toJSON()));
    expect(err.message).toContain('denied: Authorization: Basic ***');
    expect(err.registryErrors[0]?.code).toBe('DENIED');
  });

  it('cleans a plain-text body too, keeping its words', () => {
    login();
    const err = statusError(502, Buffer.from(`\x1b]0;owned\x07Bad gateway for Basic ${BASIC}\x1b[0m`), subject);
    expect(err.message).toBe('registry r.example failed with 502 for manifest team/app:v1: Bad gateway for Basic ***');
  });

  it('redacts only what was registered (the test can fail)', () => {
    const err = statusError(500, Buffer.from(echo), subject);
    expect(err.message).toContain(PASSWORD);
    expect(err.message).not.toMatch(CONTROLS);
  });
});

describe('renderError', () => {
  it('cleans the message, hint, problems and --json details of any error', () => {
    login();
    const err = new AirlockError('REGISTRY', `registry said \x1b[31m${PASSWORD}\x1b[0m`, {
      hint: `retry \u009b2J with ${TOKEN}`,
      subject: `Basic ${BASIC}`,
      details: {
        problems: [{ message: `one \r${PASSWORD_B64}` }, { message: 'two \x07' }],
        nested: [{ said: `\x1b]8;;http://x\x1b\\${PASSWORD}` }],
        password: 'anything',
      },
    });
    const rendered = renderError(err);
    expect(rendered.exitCode).toBe(9);
    for (const line of rendered.lines) expectClean(line);
    expect(rendered.lines).toEqual(['airlock: error: registry said ***', '  - one  ***', '  - two ', '  hint: retry  with ***']);
    const json = toJson(rendered.json);
    expectClean(json);
    expect(JSON.parse(json)).toMatchObject({ error: { subject: 'Basic ***', details: { nested: [{ said: '***' }], password: '***' } } });
  });

  it('cleans debug stack traces line by line', () => {
    login();
    const cause = new Error(`boom ${PASSWORD}\x1b[0m`);
    const lines = renderError(new AirlockError('NETWORK', 'x', { cause }), true).lines;
    const stack = lines[lines.length - 1] ?? '';
    expect(stack.split('\n').length).toBeGreaterThan(1);
    expectClean(stack.replace(/\n/g, ' '));
  });
});

describe('result printing', () => {
  it('cleans table cells before measuring them', () => {
    const rows = table([
      ['IMAGE', 'DIGEST'],
      ['\x1b[31mevil\x1b[0m:\u202etag', 'sha256:1'],
    ]);
    expect(rows).toEqual(['  IMAGE     DIGEST', '  evil:tag  sha256:1']);
  });

  it('writes JSON that parses to the same strings while no terminal-active character is raw', () => {
    const value = { name: 'a\x1b[31mb\u009b1m\u202ec\u2028d' };
    const text = toJson(value, 2);
    expect(text).not.toMatch(CONTROLS);
    expect(text).not.toContain('\u2028');
    expect(JSON.parse(text)).toEqual(value);
  });
});
