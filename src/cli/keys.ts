// src/cli/keys.ts
// npm run keys -- create|list|revoke|rotate: manages API keys in the same store the server uses (REDIS_URL), or in
// KEYS_FILE when there is no Redis. A new secret is printed once, to stdout, and never stored.
import { parseArgs } from 'node:util';
import { createStores, packageVersion } from '../bootstrap.js';
import { ConfigError, loadConfig } from '../config.js';
import { createKey, type KeyAccount } from '../keys.js';
import { FileKeyStore } from '../keys-file.js';
import { loadPlans } from '../plans.js';
import type { ApiKeyRecord, KeyMode, KeyStore, Stores } from '../store/types.js';

const USAGE = `Usage: npm run keys -- <command>

  create [--mode live|admin|synthetic] [--plan PLAN] [--email EMAIL] [--label LABEL]
                         make a key; prints the secret once
  list [--json]          fingerprint, mode, plan, email, created, revoked (never secrets)
  revoke <fingerprint>   revoke a key (tok_fp_…)
  rotate <fingerprint>   revoke a key and make a new one with the same account fields

Uses REDIS_URL (and REDIS_KEY_PREFIX) like the server; without REDIS_URL it edits KEYS_FILE.
`;

class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

const MODES: KeyMode[] = ['live', 'admin', 'synthetic'];

function printSecret(verb: string, secret: string, r: ApiKeyRecord, fileNote: string | undefined): void {
  process.stdout.write(
    `${verb} ${r.mode} key. The secret is shown only this once; store it now:\n\n  ${secret}\n\n` +
      `  fingerprint ${r.fingerprint}\n  mode ${r.mode}  plan ${r.plan}  email ${r.email}${r.label ? `  label ${r.label}` : ''}\n` +
      (fileNote ? `\n${fileNote}\n` : ''),
  );
}

function table(rows: ApiKeyRecord[]): string {
  const head = ['fingerprint', 'mode', 'plan', 'email', 'created', 'revoked', 'label'];
  const body = rows.map((r) => [r.fingerprint, r.mode, r.plan, r.email, r.createdAt, r.revokedAt ?? '-', r.label ?? '']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body].map((cols) => cols.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      mode: { type: 'string' },
      plan: { type: 'string' },
      email: { type: 'string' },
      label: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, arg] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    if (!command && !values.help) throw new CliError('', 2);
    return;
  }
  if (!['create', 'list', 'revoke', 'rotate'].includes(command)) throw new CliError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`, 2);

  const config = loadConfig(process.env, await packageVersion());
  const plans = loadPlans(config.PLANS);
  const defaults = { plan: config.DEFAULT_PLAN };
  let store: KeyStore;
  let stores: Stores | undefined;
  let fileNote: string | undefined;
  if (config.REDIS_URL) {
    stores = await createStores(config);
    try {
      await stores.ping();
    } catch (err) {
      await stores.close();
      throw new CliError(`cannot reach Redis at REDIS_URL: ${err instanceof Error ? err.message : String(err)}`);
    }
    store = stores.keys;
  } else if (config.KEYS_FILE) {
    store = new FileKeyStore(config.KEYS_FILE, defaults);
    fileNote = `Written to ${config.KEYS_FILE} (hash only). A server without REDIS_URL reads KEYS_FILE at start: restart it to apply.`;
  } else {
    throw new CliError(
      'keys: nowhere to keep keys. Without REDIS_URL the server keeps keys in its own memory, which this command cannot reach.\n' +
        '  Set REDIS_URL (and REDIS_KEY_PREFIX) to the same values as the server, or\n' +
        '  set KEYS_FILE to the keys file the server reads at start (then restart the server).',
      2,
    );
  }

  try {
    if (command === 'list') {
      const rows = await store.list();
      const safe = rows.map(({ hash: _hash, ...r }) => r);
      process.stdout.write(values.json ? `${JSON.stringify(safe, null, 2)}\n` : rows.length ? table(rows) : 'No keys.\n');
      return;
    }
    if (command === 'create') {
      const mode = (values.mode ?? 'live') as KeyMode;
      if (!MODES.includes(mode)) throw new CliError(`--mode must be one of ${MODES.join(', ')}`, 2);
      const plan = values.plan ?? defaults.plan;
      if (!plans[plan]) throw new CliError(`unknown plan ${JSON.stringify(plan)}; plans: ${Object.keys(plans).join(', ')} (add more with PLANS)`, 2);
      const account: KeyAccount = { mode, plan, ...(values.email ? { email: values.email } : {}), ...(values.label ? { label: values.label } : {}) };
      const { secret, record } = await createKey(store, account, defaults);
      printSecret('Created', secret, record, fileNote);
      return;
    }
    if (!arg || !/^tok_fp_[0-9a-f]+$/.test(arg)) throw new CliError(`${command} needs a fingerprint (tok_fp_…); see: npm run keys -- list`, 2);
    const existing = await store.get(arg);
    if (!existing) throw new CliError(`no key with fingerprint ${arg}`);
    if (command === 'revoke') {
      if (!(await store.revoke(arg, new Date()))) throw new CliError(`key ${arg} was already revoked at ${existing.revokedAt}`);
      process.stdout.write(`Revoked ${arg}.${fileNote ? ' Restart a server that reads KEYS_FILE to apply.' : ''}\n`);
      return;
    }
    // rotate: the new key first, so a failure never leaves the account with no working key.
    const { secret, record } = await createKey(
      store,
      {
        mode: existing.mode,
        plan: existing.plan,
        email: existing.email,
        subscriptionStatus: existing.subscriptionStatus,
        billingModel: existing.billingModel,
        usageUnit: existing.usageUnit,
        ...(existing.label ? { label: existing.label } : {}),
      },
      defaults,
    );
    if (!existing.revokedAt) await store.revoke(arg, new Date());
    printSecret(`Rotated ${arg} (now revoked) into a new`, secret, record, fileNote);
  } finally {
    await stores?.close();
  }
}

run(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof CliError) {
    if (err.message) process.stderr.write(`${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`keys: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`keys: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
