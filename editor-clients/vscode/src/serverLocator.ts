/**
 * Finding the language server executable. This module does not import `vscode`, so its rules
 * read the same in tests and in the extension.
 *
 * Order: `tinyCopilot.serverPath`, then `tinyCopilot.pythonPath` (`python -m
 * tiny_copilot.server.cli`), then `tiny-copilot-lsp` on PATH. An explicit setting wins over
 * PATH, and a wrong setting is an error rather than a silent fallback.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const SERVER_EXECUTABLE = 'tiny-copilot-lsp';
export const SERVER_MODULE = 'tiny_copilot.server.cli';
export const INSTALL_COMMAND = 'python3 -m pip install /path/to/tiny-copilot';

/** How long the check that a configured Python has our package may take. */
const PYTHON_CHECK_TIMEOUT_MS = 15_000;

export interface ServerLaunch {
  readonly command: string;
  readonly args: readonly string[];
  /** Source of the command, for the log: a setting name or "PATH". */
  readonly origin: string;
}

export interface LocateOptions {
  readonly serverPath: string;
  readonly pythonPath: string;
  /** PATH to search, which is `process.env.PATH` in the extension. */
  readonly searchPath: string | undefined;
  readonly platform?: NodeJS.Platform;
}

/** The server was not found. The message names what to change. */
export class ServerNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServerNotFoundError';
  }
}

export async function locateServer(options: LocateOptions): Promise<ServerLaunch> {
  const platform = options.platform ?? process.platform;

  if (options.serverPath !== '') {
    const serverPath = expandHome(options.serverPath);
    if (!isExecutableFile(serverPath, platform)) {
      throw new ServerNotFoundError(
        `tinyCopilot.serverPath is "${options.serverPath}", but no executable file is there. ` +
          `Point it at ${SERVER_EXECUTABLE} (for example the one in your virtual environment's bin folder) ` +
          'or clear it to search PATH.',
      );
    }
    return { command: serverPath, args: [], origin: 'tinyCopilot.serverPath' };
  }

  if (options.pythonPath !== '') {
    const pythonPath = expandHome(options.pythonPath);
    if (!isExecutableFile(pythonPath, platform)) {
      throw new ServerNotFoundError(
        `tinyCopilot.pythonPath is "${options.pythonPath}", but no executable file is there. ` +
          'Point it at a Python interpreter or clear it.',
      );
    }
    await checkPythonHasServer(pythonPath);
    return { command: pythonPath, args: ['-m', SERVER_MODULE], origin: 'tinyCopilot.pythonPath' };
  }

  const found = searchPath(SERVER_EXECUTABLE, options.searchPath ?? '', platform);
  if (found === undefined) {
    throw new ServerNotFoundError(
      `The tiny-copilot language server (${SERVER_EXECUTABLE}) is not on PATH. ` +
        `Install it with \`${INSTALL_COMMAND}\`, or set tinyCopilot.serverPath to the executable ` +
        'or tinyCopilot.pythonPath to a Python that has the package.',
    );
  }
  return { command: found, args: [], origin: 'PATH' };
}

/** Return the first executable `name` in the `searchPath` folders, or undefined. */
export function searchPath(name: string, searchPath: string, platform: NodeJS.Platform): string | undefined {
  // pip installs console scripts as name.exe on Windows. Elsewhere the file has the bare name.
  const candidates = platform === 'win32' ? [`${name}.exe`, `${name}.cmd`] : [name];
  const separator = platform === 'win32' ? ';' : ':';
  for (const folder of searchPath.split(separator)) {
    if (folder === '') {
      continue;
    }
    for (const candidate of candidates) {
      const file = path.join(folder, candidate);
      if (isExecutableFile(file, platform)) {
        return file;
      }
    }
  }
  return undefined;
}

function isExecutableFile(file: string, platform: NodeJS.Platform): boolean {
  try {
    if (!fs.statSync(file).isFile()) {
      return false;
    }
    // Windows has no execute bit, so existence is the best available check there.
    fs.accessSync(file, platform === 'win32' ? fs.constants.F_OK : fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function expandHome(file: string): string {
  if (file === '~' || file.startsWith('~/')) {
    return path.join(os.homedir(), file.slice(1));
  }
  return file;
}

/** Reject with ServerNotFoundError unless `pythonPath` can import the server module. */
function checkPythonHasServer(pythonPath: string): Promise<void> {
  // find_spec imports only the parent packages, not the server and torch, so this stays fast.
  const probe = `import importlib.util, sys; sys.exit(importlib.util.find_spec("${SERVER_MODULE}") is None)`;
  return new Promise((resolve, reject) => {
    execFile(pythonPath, ['-c', probe], { timeout: PYTHON_CHECK_TIMEOUT_MS }, (error, _stdout, stderr) => {
      if (error === null) {
        resolve();
        return;
      }
      const detail = stderr.trim().split('\n').pop() ?? '';
      reject(
        new ServerNotFoundError(
          `The Python at tinyCopilot.pythonPath ("${pythonPath}") cannot import ${SERVER_MODULE}` +
            (detail !== '' ? ` (${detail})` : '') +
            `. Install the package into it with \`"${pythonPath}" -m pip install /path/to/tiny-copilot\` (your clone of the repository).`,
        ),
      );
    });
  });
}
