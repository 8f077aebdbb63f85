/** Entry point: creates the output channel, status bar, server controller and commands, and wires events. */
import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { ServerController } from './serverController';
import { areInlineSuggestionsOn, disabledReason, INLINE_SUGGEST_SETTING, SECTION, SERVER_SETTING_KEYS } from './settings';
import { StatusBar } from './statusBar';

/** Settings that change how the server is started, so a change restarts it. */
const LAUNCH_SETTINGS = ['serverPath', 'pythonPath'];

let controller: ServerController | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const outputChannel = vscode.window.createOutputChannel('tiny-copilot', { log: true });
  const statusBar = new StatusBar();
  controller = new ServerController(outputChannel, statusBar);
  const server = controller;

  const updateEnabledHere = (): void => {
    const document = vscode.window.activeTextEditor?.document;
    statusBar.setDisabledReason(document === undefined ? undefined : disabledReason(document.languageId));
    statusBar.setInlineSuggestionsOn(areInlineSuggestionsOn(document));
  };

  context.subscriptions.push(
    outputChannel,
    statusBar,
    server,
    ...registerCommands(server, outputChannel),
    vscode.window.onDidChangeActiveTextEditor(updateEnabledHere),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration(INLINE_SUGGEST_SETTING)) {
        updateEnabledHere();
      }
      if (!event.affectsConfiguration(SECTION)) {
        return;
      }
      updateEnabledHere();
      if (LAUNCH_SETTINGS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
        await server.restart();
      } else if (SERVER_SETTING_KEYS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
        await server.sendSettings();
      }
    }),
  );

  updateEnabledHere();
  await server.start();
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}
