// Installing the extension into, starting and stopping an isolated code-server.
//
// Every folder code-server and the language server write to (user data, extensions, XDG
// config/data/cache/state) lives under one temporary root, so a run leaves nothing in $HOME.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const HEALTH_POLL_INTERVAL_MS = 200;

/** Folders of one isolated code-server profile under `root`. */
export function profileDirs(root) {
  return {
    root,
    userData: path.join(root, 'user-data'),
    extensions: path.join(root, 'extensions'),
    xdg: path.join(root, 'xdg'),
    workspace: path.join(root, 'workspace'),
    log: path.join(root, 'code-server.log'),
  };
}

/** Environment for code-server and everything it starts: XDG folders point into the profile. */
export function isolatedEnv(dirs) {
  return {
    ...process.env,
    XDG_CONFIG_HOME: path.join(dirs.xdg, 'config'),
    XDG_DATA_HOME: path.join(dirs.xdg, 'data'),
    XDG_CACHE_HOME: path.join(dirs.xdg, 'cache'),
    XDG_STATE_HOME: path.join(dirs.xdg, 'state'),
  };
}

/** Write the user settings.json that every run starts from, merged with `settings`. */
export async function writeUserSettings(dirs, settings) {
  const base = {
    // Nothing may reach the network or open a dialog in the middle of a scripted run.
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoUpdate': false,
    'extensions.autoCheckUpdates': false,
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    // The typed text must reach the file unchanged: no auto-closing pairs or auto-indentation,
    // and no suggest widget that could take the Tab meant for the ghost text.
    'editor.autoClosingBrackets': 'never',
    'editor.autoClosingQuotes': 'never',
    'editor.autoSurround': 'never',
    'editor.autoIndent': 'none',
    'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
    'editor.suggestOnTriggerCharacters': false,
    'editor.inlineSuggest.enabled': true,
    'editor.minimap.enabled': false,
    'files.autoSave': 'off',
    ...settings,
  };
  const folder = path.join(dirs.userData, 'User');
  await fs.mkdir(folder, { recursive: true });
  await fs.writeFile(path.join(folder, 'settings.json'), JSON.stringify(base, null, 2));
}

/** Return the user settings.json as it is now, with what the extension wrote to it. */
export async function readUserSettings(dirs) {
  return JSON.parse(await fs.readFile(path.join(dirs.userData, 'User', 'settings.json'), 'utf8'));
}

export async function installExtension(codeServer, dirs, vsix) {
  const { stdout } = await execFileAsync(
    codeServer,
    ['--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions, '--install-extension', vsix, '--force'],
    { env: isolatedEnv(dirs), timeout: 60_000 },
  );
  if (!/successfully installed/i.test(stdout)) {
    throw new Error(`code-server --install-extension ${vsix} did not report success; it printed:\n${stdout}`);
  }
}

/** Return a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Start code-server on 127.0.0.1:`port` without authentication. It runs in its own session
 * (detached: Node calls setsid()), so stop() can end the whole process group, including the
 * file watcher and extension host it forks.
 */
export async function startCodeServer(codeServer, dirs, port, timeoutMs) {
  const log = await fs.open(dirs.log, 'w');
  const configFile = path.join(dirs.root, 'code-server.yaml');
  await fs.writeFile(configFile, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const child = spawn(
    codeServer,
    [
      '--config', configFile,
      '--bind-addr', `127.0.0.1:${port}`,
      '--auth', 'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      '--user-data-dir', dirs.userData,
      '--extensions-dir', dirs.extensions,
      dirs.workspace,
    ],
    { env: isolatedEnv(dirs), detached: true, stdio: ['ignore', log.fd, log.fd] },
  );
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  const handle = { child, port, url: `http://127.0.0.1:${port}`, stop: () => stopProcessGroup(child, log) };

  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== null) {
      await handle.stop();
      throw new Error(`code-server exited early (${JSON.stringify(exited)}); see ${dirs.log}`);
    }
    if (await isHealthy(handle.url)) {
      return handle;
    }
    await sleep(HEALTH_POLL_INTERVAL_MS);
  }
  await handle.stop();
  throw new Error(`code-server did not answer on ${handle.url}/healthz within ${timeoutMs} ms; see ${dirs.log}`);
}

async function isHealthy(url) {
  try {
    const response = await fetch(`${url}/healthz`);
    return response.ok;
  } catch {
    return false;
  }
}

const STOP_GRACE_MS = 3_000;

/** SIGTERM the process group, then SIGKILL whatever is left after a grace period. */
async function stopProcessGroup(child, log) {
  const group = -child.pid;
  if (signalGroup(group, 'SIGTERM')) {
    const deadline = Date.now() + STOP_GRACE_MS;
    while (Date.now() < deadline && signalGroup(group, 0)) {
      await sleep(100);
    }
    signalGroup(group, 'SIGKILL');
  }
  await log.close();
}

/** Send `signal` to a process group. Return false when the group no longer exists. */
function signalGroup(group, signal) {
  try {
    process.kill(group, signal);
    return true;
  } catch (error) {
    if (error.code === 'ESRCH') {
      return false;
    }
    throw error;
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
