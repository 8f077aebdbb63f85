#!/usr/bin/env node
// Drive the extension in real VS Code (code-server + headless Chromium): open a file, type,
// wait for ghost text from the language server, accept it with Tab and save.
//
//   node editor-clients/vscode/test/drive.mjs --file example.py --type 'def ' [--checkpoint DIR]
//       [--screenshot docs/ghost-text.png] [--artifacts DIR] [--result result.json]
//
// It prints (and with --result writes) a JSON report: the saved text before Tab, the ghost text
// that was shown, the saved text after Tab, the status bar text and timings. It checks nothing
// itself; tests/editors/test_vscode_e2e.py asserts on the report.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import {
  freePort,
  installExtension,
  readUserSettings,
  isolatedEnv,
  profileDirs,
  sleep,
  startCodeServer,
  writeUserSettings,
} from './codeServer.mjs';
import {
  describeGhostDom,
  openFile,
  openWorkbench,
  runCommand,
  statusText,
  statusTooltip,
  waitForGhostText,
  waitForStatus,
} from './workbench.mjs';

const extensionDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repoDir = path.resolve(extensionDir, '../..');

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
const VIEWPORT = { width: 1280, height: 800 };
const TYPE_DELAY_MS = 40;
const SAVE_TIMEOUT_MS = 10_000;
// Ask for the ghost text again (Trigger Inline Suggestion) after this long without any.
const GHOST_RETRIGGER_MS = 5_000;
const GHOST_RETRIGGER_AFTER_SAVE_MS = 1_000;

const HELP = `Usage: node drive.mjs --file FILE --type TEXT [options]

  --checkpoint DIR    checkpoint folder the server loads (tinyCopilot.checkpoint);
                      without it the server loads the model shipped with the package
  --file FILE         file to open; a copy is edited in a temporary workspace
  --type TEXT         text typed at the end of the file; a newline in TEXT presses Enter
  --screenshot PNG    also save the ghost-text screenshot here
  --artifacts DIR     screenshots and logs (default: test-artifacts/vscode)
  --result JSON       write the report here as well as to stdout
  --server PATH       tiny-copilot-lsp to run (default: .venv/bin/tiny-copilot-lsp)
  --code-server PATH  code-server binary (default: .tools/code-server/node_modules/.bin/code-server)
  --vsix PATH         extension package (default: editor-clients/vscode/build/tiny-copilot.vsix)
  --chromium PATH     Chromium binary (default: /usr/bin/chromium)
  --setting K=JSON    extra user setting, repeatable, e.g. --setting tinyCopilot.maxLines=1
  --timeout-s N       limit for each wait: workbench, server ready, ghost text (default: 60)
  --command TITLE     run this Command Palette command after opening the file, repeatable
  --kill-server PIDFILE
                      once the status matches --type-at-status, kill the server whose process
                      id is the last line of PIDFILE with SIGKILL, as a crash would, and wait
                      until the server that the extension starts again reports ready
  --stop-at-status RE stop once the status bar item matches the regular expression RE,
                      without typing, and report its tooltip (checks the error and disabled states)
  --type-at-status RE start typing once the status bar item matches RE (default: ready);
                      'starting|loading' types before the model is loaded
  --no-retrigger      never run Trigger Inline Suggestion before the first ghost text, so
                      only the extension's own requests can bring it
  --keep              keep the temporary profile folder and print its path`;

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      checkpoint: { type: 'string' },
      file: { type: 'string' },
      type: { type: 'string' },
      screenshot: { type: 'string' },
      artifacts: { type: 'string', default: path.join(repoDir, 'test-artifacts', 'vscode') },
      result: { type: 'string' },
      server: { type: 'string', default: path.join(repoDir, '.venv', 'bin', 'tiny-copilot-lsp') },
      'code-server': {
        type: 'string',
        default: path.join(repoDir, '.tools', 'code-server', 'node_modules', '.bin', 'code-server'),
      },
      vsix: { type: 'string', default: path.join(extensionDir, 'build', 'tiny-copilot.vsix') },
      chromium: { type: 'string', default: '/usr/bin/chromium' },
      setting: { type: 'string', multiple: true, default: [] },
      'timeout-s': { type: 'string', default: '60' },
      'stop-at-status': { type: 'string' },
      'type-at-status': { type: 'string', default: 'ready' },
      'no-retrigger': { type: 'boolean', default: false },
      command: { type: 'string', multiple: true, default: [] },
      'kill-server': { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const required = values['stop-at-status'] === undefined ? ['file', 'type'] : ['file'];
  for (const name of required) {
    if (values[name] === undefined) {
      throw new Error(`--${name} is required\n\n${HELP}`);
    }
  }
  const timeoutS = Number(values['timeout-s']);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) {
    throw new Error(`--timeout-s must be a positive number of seconds, got ${JSON.stringify(values['timeout-s'])}`);
  }
  const stopAtStatus = values['stop-at-status'] === undefined ? undefined : new RegExp(values['stop-at-status']);
  return {
    ...values,
    timeoutMs: timeoutS * 1000,
    extraSettings: parseSettings(values.setting),
    stopAtStatus,
    typeAtStatus: new RegExp(values['type-at-status']),
  };
}

function parseSettings(pairs) {
  const settings = {};
  for (const pair of pairs) {
    const separator = pair.indexOf('=');
    if (separator <= 0) {
      throw new Error(`--setting must look like KEY=JSON, got ${JSON.stringify(pair)}`);
    }
    try {
      settings[pair.slice(0, separator)] = JSON.parse(pair.slice(separator + 1));
    } catch (error) {
      throw new Error(`--setting ${JSON.stringify(pair)}: the value is not valid JSON (${error.message})`);
    }
  }
  return settings;
}

async function requireFile(file, what, hint) {
  try {
    await fs.access(file);
  } catch {
    throw new Error(`${what} not found at ${file}; ${hint}`);
  }
}

/**
 * Wait until the active tab is saved and `file` on disk differs from `previous`, and return its
 * text. Polling the file alone is not enough: read while VS Code writes it, it can be empty.
 */
async function waitForSave(page, file, previous) {
  const deadline = Date.now() + SAVE_TIMEOUT_MS;
  await page.locator('.tab.active:not(.dirty)').waitFor({ timeout: SAVE_TIMEOUT_MS });
  while (Date.now() < deadline) {
    const text = await fs.readFile(file, 'utf8');
    if (text !== previous) {
      return text;
    }
    await sleep(100);
  }
  throw new Error(`${file} did not change on disk within ${SAVE_TIMEOUT_MS} ms after Ctrl+S`);
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  await requireFile(options['code-server'], 'code-server', 'run editor-clients/vscode/scripts/install-test-deps.sh');
  await requireFile(options.vsix, 'the .vsix', 'run editor-clients/vscode/scripts/package.sh');
  await requireFile(options.chromium, 'Chromium', 'install it with: apt-get install chromium');
  await requireFile(options.server, 'tiny-copilot-lsp', 'install the package into .venv or pass --server');
  if (options.checkpoint !== undefined) {
    await requireFile(options.checkpoint, 'the checkpoint folder', 'pass an existing folder to --checkpoint');
  }
  await fs.mkdir(options.artifacts, { recursive: true });

  const started = Date.now();
  const timings = {};
  const mark = (name) => {
    timings[name] = Date.now() - started;
  };
  const report = { status: null, before: null, ghost: null, after: null, timings_ms: timings };

  // 1. An isolated profile with the extension installed and the file copied into a workspace.
  const dirs = profileDirs(await fs.mkdtemp(path.join(os.tmpdir(), 'tiny-copilot-vscode-')));
  await fs.mkdir(dirs.workspace, { recursive: true });
  const fileName = path.basename(options.file);
  const workspaceFile = path.join(dirs.workspace, fileName);
  await fs.copyFile(options.file, workspaceFile);
  const checkpointSetting =
    options.checkpoint === undefined ? {} : { 'tinyCopilot.checkpoint': path.resolve(options.checkpoint) };
  await writeUserSettings(dirs, {
    'tinyCopilot.serverPath': path.resolve(options.server),
    ...checkpointSetting,
    ...options.extraSettings,
  });
  await installExtension(options['code-server'], dirs, path.resolve(options.vsix));
  mark('extension_installed');

  let server;
  let browser;
  let page;
  try {
    // 2. code-server and Chromium.
    server = await startCodeServer(options['code-server'], dirs, await freePort(), options.timeoutMs);
    mark('code_server_started');
    browser = await chromium.launch({
      executablePath: options.chromium,
      args: CHROMIUM_ARGS,
      env: isolatedEnv(dirs),
    });
    page = await browser.newPage({ viewport: VIEWPORT });
    await openWorkbench(page, server.url, dirs.workspace, options.timeoutMs);
    mark('workbench_shown');
    await page.screenshot({ path: path.join(options.artifacts, '01-workbench.png') });

    // 3. Open the file and wait for the status that typing (or stopping) waits for.
    await openFile(page, fileName, options.timeoutMs);
    for (const title of options.command) {
      await runCommand(page, title, options.timeoutMs);
    }
    report.status = await waitForStatus(page, options.stopAtStatus ?? options.typeAtStatus, options.timeoutMs);
    mark('status_shown');
    if (options['kill-server'] !== undefined) {
      report.killed_pid = await killServer(page, options['kill-server'], options.timeoutMs);
      mark('server_restarted');
    }
    if (options.stopAtStatus !== undefined) {
      report.tooltip = await statusTooltip(page, options.timeoutMs);
      await page.screenshot({ path: path.join(options.artifacts, '02-status.png') });
    } else {
      await typeAndAccept(page, options, workspaceFile, report, mark);
    }
  } catch (error) {
    report.error = error.message;
    if (page !== undefined) {
      report.status = await statusText(page).catch(() => null);
      report.ghost_dom = await describeGhostDom(page).catch(() => '');
      await page.screenshot({ path: path.join(options.artifacts, 'failure.png') }).catch(() => {});
    }
  } finally {
    report.user_settings = await readUserSettings(dirs).catch((error) => `unreadable: ${error.message}`);
    await browser?.close();
    await server?.stop();
    await copyLogs(dirs, options.artifacts);
    if (options.keep) {
      console.error(`profile kept at ${dirs.root}`);
    } else {
      await fs.rm(dirs.root, { recursive: true, force: true });
    }
  }

  const json = JSON.stringify(report, null, 2);
  if (options.result !== undefined) {
    await fs.writeFile(options.result, json);
  }
  console.log(json);
  return report.error === undefined ? 0 : 1;
}

/** Type at the end of the file, wait for ghost text, accept it with Tab, and fill in `report`. */
async function typeAndAccept(page, options, workspaceFile, report, mark) {
  await page.keyboard.press('Control+End');
  await page.keyboard.type(options.type, { delay: TYPE_DELAY_MS });
  await waitForGhostText(page, options.timeoutMs, options['no-retrigger'] ? null : GHOST_RETRIGGER_MS);
  await page.keyboard.press('Control+S');
  report.before = await waitForSave(page, workspaceFile, await fs.readFile(options.file, 'utf8'));

  // Saving can hide the ghost text; waitForGhostText triggers it again when it does.
  report.ghost = await waitForGhostText(page, options.timeoutMs, GHOST_RETRIGGER_AFTER_SAVE_MS);
  report.ghost_dom = await describeGhostDom(page);
  mark('ghost_text_shown');
  await page.screenshot({ path: path.join(options.artifacts, '02-ghost-text.png') });
  if (options.screenshot !== undefined) {
    await fs.mkdir(path.dirname(path.resolve(options.screenshot)), { recursive: true });
    await page.screenshot({ path: options.screenshot });
  }

  await page.keyboard.press('Tab');
  await page.keyboard.press('Control+S');
  report.after = await waitForSave(page, workspaceFile, report.before);
  mark('accepted_and_saved');
  await page.screenshot({ path: path.join(options.artifacts, '03-accepted.png') });
}

/**
 * Kill the server whose process id is the last line of `pidFile`, then wait until the status bar
 * item has left the ready state and come back to it. Return the killed process id.
 */
async function killServer(page, pidFile, timeoutMs) {
  const lines = (await fs.readFile(pidFile, 'utf8')).trim().split('\n');
  const pid = Number(lines[lines.length - 1]);
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new Error(`--kill-server: ${pidFile} does not end with a process id: ${JSON.stringify(lines)}`);
  }
  process.kill(pid, 'SIGKILL');
  await waitForStatus(page, /^(?!.*ready)/, timeoutMs);
  await waitForStatus(page, /ready/, timeoutMs);
  return pid;
}

/** Keep code-server's log and the extension's output channel with the screenshots. */
async function copyLogs(dirs, artifacts) {
  const target = path.join(artifacts, 'logs');
  await fs.rm(target, { recursive: true, force: true });
  await fs.mkdir(target, { recursive: true });
  await fs.copyFile(dirs.log, path.join(target, 'code-server.log')).catch(() => {});
  await fs.cp(path.join(dirs.userData, 'logs'), path.join(target, 'vscode'), { recursive: true }).catch(() => {});
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`drive.mjs: ${error.message}`);
    process.exit(2);
  },
);
