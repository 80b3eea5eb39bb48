/**
 * The airlock command line: parse, call one library operation, print. Commands live in
 * `commands/`; errors become exit codes in `render-error.ts` / `exit-codes.ts` only.
 */
import { Command, CommanderError, Option } from 'commander';
import { registerBundleCommands } from './commands/bundle.js';
import { registerKeyCommands } from './commands/key.js';
import { registerInventoryCommand } from './commands/inventory.js';
import { registerCopyCommand } from './commands/copy.js';
import { registerMirrorConfigCommand } from './commands/mirror-config.js';
import { registerTagsCommand } from './commands/tags.js';
import { AirlockError } from '../errors.js';
import { EXIT_CODES } from './exit-codes.js';
import { renderError } from './render-error.js';
import { toJson } from './output.js';
import { logLine, type LogFormat } from './progress.js';
import { watchSignals } from './interrupt.js';
import { COMMIT, VERSION } from '../version.js';

export interface GlobalOptions {
  json: boolean;
  quiet: boolean;
  debug: boolean;
  wide: boolean;
  logFormat: LogFormat;
}

/** What every command needs besides its own flags. */
export interface CommandContext {
  /** Aborted on Ctrl-C / SIGTERM. */
  signal: AbortSignal;
  globals(): GlobalOptions;
  /**
   * Say what running the same command again does after an interruption (create: continues
   * OUT.partial); printed if the run has to be ended before it can report it itself.
   */
  onInterruptHint(hint: string): void;
}

export function buildProgram(signal: AbortSignal = new AbortController().signal, onInterruptHint: (hint: string) => void = () => undefined): Command {
  const program = new Command('airlock')
    .description('Move container images across an air gap in one signed, deduplicated OCI bundle')
    .option('-V, --version', 'print the version and the commit airlock was built from')
    .option('--json', 'print the result (or the error) as JSON on stdout', false)
    .option('-q, --quiet', 'print no progress', false)
    .option('--debug', 'print an HTTP trace (method, URL, status, bytes, time; secrets redacted) and stack traces for internal errors', false)
    .addOption(
      new Option('--log-format <format>', 'progress on stderr as text (a spinner on a terminal, plain lines otherwise) or JSON lines for log shippers')
        .choices(['text', 'json'])
        .default('text'),
    )
    .option('--wide', 'show whole digests in tables and progress lines (they are cut to 12 hex digits otherwise)', false)
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride();
  // Not commander's .version(): main() prints the line, which names the commit too, or with --json
  // a JSON document (commander may meet --version before it has parsed --json).
  program.on('option:version', () => {
    throw new CommanderError(0, 'commander.version', VERSION);
  });
  const ctx: CommandContext = { signal, globals: () => program.opts<GlobalOptions>(), onInterruptHint };
  registerKeyCommands(program, ctx);
  registerBundleCommands(program, ctx);
  registerInventoryCommand(program, ctx);
  registerCopyCommand(program, ctx);
  registerMirrorConfigCommand(program, ctx);
  registerTagsCommand(program, ctx);
  return program;
}

/** Run the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // `airlock bundle inspect X | head` closes stdout early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const signals = watchSignals();
  const program = buildProgram(signals.signal, (hint) => signals.setHint(hint));
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are "errors" in commander's exitOverride mode.
      if (err.code === 'commander.version') {
        const json = program.opts<GlobalOptions>().json || argv.includes('--json');
        process.stdout.write(json ? `${toJson({ version: VERSION, commit: COMMIT })}\n` : `airlock ${VERSION} (commit ${COMMIT})\n`);
        return 0;
      }
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
      // commander printed the message on stderr; with --json, stdout still holds one JSON document.
      // The option may not have been parsed yet when the error came first, hence argv too.
      if (program.opts<GlobalOptions>().json || argv.includes('--json')) {
        const usage = new AirlockError('USAGE', err.message.replace(/^error: /, ''), { hint: 'run with --help for usage' });
        process.stdout.write(`${toJson(renderError(usage).json)}\n`);
      }
      return EXIT_CODES.USAGE;
    }
    const globals = program.opts<GlobalOptions>();
    const rendered = renderError(err, globals.debug);
    if (globals.json) process.stdout.write(`${toJson(rendered.json)}\n`);
    if (globals.logFormat === 'json')
      process.stderr.write(`${logLine({ event: 'error', ...(rendered.json['error'] as Record<string, unknown>), exitCode: rendered.exitCode })}\n`);
    else for (const line of rendered.lines) process.stderr.write(`${line}\n`);
    return rendered.exitCode;
  } finally {
    signals.settled();
    signals.dispose();
  }
}
