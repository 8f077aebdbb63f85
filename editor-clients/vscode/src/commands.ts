/** The extension's commands: restart, enable/disable (everywhere or per language), log, status menu. */
import * as vscode from 'vscode';
import { ServerController } from './serverController';
import {
  ALL_LANGUAGES,
  areInlineSuggestionsOn,
  ENABLED_LANGUAGES_KEY,
  INLINE_SUGGEST_KEY,
  INLINE_SUGGEST_SECTION,
  readClientSettings,
  readEnabledLanguages,
  SECTION,
} from './settings';
import { STATUS_MENU_COMMAND, TURN_ON_INLINE_SUGGESTIONS_COMMAND } from './statusBar';

export function registerCommands(
  controller: ServerController,
  outputChannel: vscode.LogOutputChannel,
): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('tinyCopilot.restartServer', () => controller.restart()),
    vscode.commands.registerCommand('tinyCopilot.enable', () => setEnabled(true)),
    vscode.commands.registerCommand('tinyCopilot.disable', () => setEnabled(false)),
    vscode.commands.registerCommand('tinyCopilot.enableForLanguage', () => setLanguageEnabled(true)),
    vscode.commands.registerCommand('tinyCopilot.disableForLanguage', () => setLanguageEnabled(false)),
    vscode.commands.registerCommand('tinyCopilot.showLog', () => outputChannel.show()),
    vscode.commands.registerCommand(STATUS_MENU_COMMAND, () => showStatusMenu()),
    vscode.commands.registerCommand(TURN_ON_INLINE_SUGGESTIONS_COMMAND, () => turnOnInlineSuggestions()),
  ];
}

async function setEnabled(enabled: boolean): Promise<void> {
  await updateSetting('enable', enabled);
}

async function setLanguageEnabled(enabled: boolean): Promise<void> {
  const languageId = await pickLanguage(enabled);
  if (languageId === undefined) {
    return;
  }
  const languages = readEnabledLanguages();

  if (enabled) {
    if (!languages.includes(ALL_LANGUAGES) && !languages.includes(languageId)) {
      await updateSetting(ENABLED_LANGUAGES_KEY, [...languages, languageId]);
    }
    if (!readClientSettings().enable) {
      void vscode.window.showInformationMessage(
        `tiny-copilot: ${languageId} is enabled, but completions are off everywhere. ` +
          'Run "tiny-copilot: Enable Completions" to turn them on.',
      );
    }
    return;
  }

  // A list containing "*" cannot exclude one language, so ask the user to list languages instead.
  if (languages.includes(ALL_LANGUAGES)) {
    const choice = await vscode.window.showWarningMessage(
      `tiny-copilot: ${SECTION}.${ENABLED_LANGUAGES_KEY} contains "*", which enables every language, ` +
        `so ${languageId} cannot be turned off alone. Replace "*" with the languages you want.`,
      'Open Settings',
    );
    if (choice === 'Open Settings') {
      await vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.${ENABLED_LANGUAGES_KEY}`);
    }
    return;
  }
  await updateSetting(
    ENABLED_LANGUAGES_KEY,
    languages.filter((language) => language !== languageId),
  );
}

/** Return the active editor's language, or ask for one when no editor is open. */
async function pickLanguage(enabled: boolean): Promise<string | undefined> {
  const editor = vscode.window.activeTextEditor;
  if (editor !== undefined) {
    return editor.document.languageId;
  }
  const languages = await vscode.languages.getLanguages();
  return vscode.window.showQuickPick(languages.sort(), {
    title: enabled ? 'Enable tiny-copilot for language' : 'Disable tiny-copilot for language',
  });
}

/**
 * Write `key` where its current value comes from: the workspace when the workspace sets it,
 * else the user settings. Writing to the user settings under a workspace value would do nothing.
 */
async function updateSetting(key: string, value: unknown): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const inspected = config.inspect(key);
  const target =
    inspected?.workspaceValue !== undefined
      ? vscode.ConfigurationTarget.Workspace
      : vscode.ConfigurationTarget.Global;
  await config.update(key, value, target);
}

/**
 * Set VS Code's editor.inlineSuggest.enabled to true in each of the user, workspace and folder
 * settings (and their sections for the active editor's language) that sets it to false. A false
 * default, which another extension can contribute, is overridden in the user settings.
 */
async function turnOnInlineSuggestions(): Promise<void> {
  const document = vscode.window.activeTextEditor?.document;
  const config = vscode.workspace.getConfiguration(INLINE_SUGGEST_SECTION, document);
  const inspected = config.inspect<boolean>(INLINE_SUGGEST_KEY);
  const { Global, Workspace, WorkspaceFolder } = vscode.ConfigurationTarget;
  const levels: [boolean | undefined, vscode.ConfigurationTarget, boolean][] = [
    [inspected?.globalValue, Global, false],
    [inspected?.workspaceValue, Workspace, false],
    [inspected?.workspaceFolderValue, WorkspaceFolder, false],
    [inspected?.globalLanguageValue, Global, true],
    [inspected?.workspaceLanguageValue, Workspace, true],
    [inspected?.workspaceFolderLanguageValue, WorkspaceFolder, true],
  ];
  for (const [value, target, inLanguage] of levels) {
    if (value === false) {
      await config.update(INLINE_SUGGEST_KEY, true, target, inLanguage);
    }
  }

  if (!areInlineSuggestionsOn(document)) {
    await config.update(INLINE_SUGGEST_KEY, true, Global, inspected?.defaultLanguageValue === false);
  }
}

async function showStatusMenu(): Promise<void> {
  const enabled = readClientSettings().enable;
  const document = vscode.window.activeTextEditor?.document;
  const languageId = document?.languageId;
  const items: { label: string; command: string }[] = [];
  if (!areInlineSuggestionsOn(document)) {
    items.push({ label: 'Turn on inline suggestions in VS Code settings', command: TURN_ON_INLINE_SUGGESTIONS_COMMAND });
  }
  items.push(
    enabled
      ? { label: 'Disable completions everywhere', command: 'tinyCopilot.disable' }
      : { label: 'Enable completions everywhere', command: 'tinyCopilot.enable' },
  );
  if (languageId !== undefined) {
    const languages = readEnabledLanguages();
    const languageOn = languages.includes(ALL_LANGUAGES) || languages.includes(languageId);
    items.push(
      languageOn
        ? { label: `Disable completions for ${languageId}`, command: 'tinyCopilot.disableForLanguage' }
        : { label: `Enable completions for ${languageId}`, command: 'tinyCopilot.enableForLanguage' },
    );
  }
  items.push(
    { label: 'Restart the language server', command: 'tinyCopilot.restartServer' },
    { label: 'Show the log', command: 'tinyCopilot.showLog' },
  );

  const choice = await vscode.window.showQuickPick(items, { title: 'tiny-copilot' });
  if (choice !== undefined) {
    await vscode.commands.executeCommand(choice.command);
  }
}
