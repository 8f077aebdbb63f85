/**
 * The extension's settings. Everything under `tinyCopilot.` belongs to the language server and
 * mirrors `ServerSettings` in server/settings.py, except the client-owned keys below, which
 * only this extension reads.
 */
import * as vscode from 'vscode';
import manifest from '../package.json';

export const SECTION = 'tinyCopilot';

/** Keys under `tinyCopilot.` that the extension reads itself and never sends to the server. */
export const CLIENT_SETTING_KEYS: ReadonlySet<string> = new Set([
  'enable',
  'serverPath',
  'pythonPath',
  'trace.server',
]);

/** The server-owned key that lists the language ids with completions; `*` means every language. */
export const ENABLED_LANGUAGES_KEY = 'enabledLanguages';
export const ALL_LANGUAGES = '*';

/** Server-owned keys, read from package.json so that the manifest stays the only list. */
export const SERVER_SETTING_KEYS: readonly string[] = Object.keys(
  manifest.contributes.configuration.properties,
)
  .map((name) => name.slice(SECTION.length + 1))
  .filter((key) => !CLIENT_SETTING_KEYS.has(key));

export interface ClientSettings {
  /** Whether completions are shown at all. */
  readonly enable: boolean;
  /** Configured `tiny-copilot-lsp` path; empty when not set. */
  readonly serverPath: string;
  /** Configured Python interpreter; empty when not set. */
  readonly pythonPath: string;
}

export function readClientSettings(): ClientSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  return {
    enable: config.get<boolean>('enable', true),
    serverPath: config.get<string>('serverPath', '').trim(),
    pythonPath: config.get<string>('pythonPath', '').trim(),
  };
}

/**
 * Return the server settings as a flat object with camelCase keys, the form that
 * `ServerSettings.from_json` reads from initializationOptions and didChangeConfiguration.
 */
export function readServerSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const settings: Record<string, unknown> = {};
  for (const key of SERVER_SETTING_KEYS) {
    settings[key] = config.get(key);
  }
  return settings;
}

export function readEnabledLanguages(): readonly string[] {
  return vscode.workspace.getConfiguration(SECTION).get<string[]>(ENABLED_LANGUAGES_KEY, []);
}

/** Return whether completions are on for documents of `languageId`. */
export function isEnabledFor(languageId: string): boolean {
  if (!readClientSettings().enable) {
    return false;
  }
  const languages = readEnabledLanguages();
  return languages.includes(ALL_LANGUAGES) || languages.includes(languageId);
}

/** Say which setting turns completions off for `languageId`; undefined when they are on. */
export function disabledReason(languageId: string): string | undefined {
  if (!readClientSettings().enable) {
    return `Completions are off everywhere (${SECTION}.enable is false).`;
  }
  if (!isEnabledFor(languageId)) {
    return `Completions are off for ${languageId}: it is not in ${SECTION}.${ENABLED_LANGUAGES_KEY}.`;
  }
  return undefined;
}

/**
 * VS Code's own switch for ghost text. When it is false, VS Code shows no extension's inline
 * completions, ours included. The key may also be set per language, so read it for `document`.
 */
export const INLINE_SUGGEST_SECTION = 'editor';
export const INLINE_SUGGEST_KEY = 'inlineSuggest.enabled';
export const INLINE_SUGGEST_SETTING = `${INLINE_SUGGEST_SECTION}.${INLINE_SUGGEST_KEY}`;

/** Return whether VS Code shows inline suggestions in `document` (or anywhere, without one). */
export function areInlineSuggestionsOn(document?: vscode.TextDocument): boolean {
  return vscode.workspace.getConfiguration(INLINE_SUGGEST_SECTION, document).get<boolean>(INLINE_SUGGEST_KEY, true);
}
