/** The status bar item: what the server is doing and whether completions are on for this editor. */
import * as vscode from 'vscode';

export type ServerState =
  | { readonly kind: 'starting' }
  | { readonly kind: 'loading'; readonly message: string; readonly percentage?: number }
  | { readonly kind: 'ready' }
  | { readonly kind: 'stopped' }
  | { readonly kind: 'error'; readonly message: string };

export const STATUS_MENU_COMMAND = 'tinyCopilot.showStatusMenu';
export const TURN_ON_INLINE_SUGGESTIONS_COMMAND = 'tinyCopilot.turnOnInlineSuggestions';

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private serverState: ServerState = { kind: 'stopped' };
  private disabledReason: string | undefined;
  private inlineSuggestionsOn = true;

  constructor() {
    this.item = vscode.window.createStatusBarItem('tinyCopilot.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'tiny-copilot';
    this.item.command = STATUS_MENU_COMMAND;
    this.render();
    this.item.show();
  }

  get state(): ServerState {
    return this.serverState;
  }

  setServerState(state: ServerState): void {
    this.serverState = state;
    this.render();
  }

  /** Record why completions are off for the active editor's language; undefined when they are on. */
  setDisabledReason(reason: string | undefined): void {
    this.disabledReason = reason;
    this.render();
  }

  /** Record whether VS Code's editor.inlineSuggest.enabled is on for the active editor. */
  setInlineSuggestionsOn(on: boolean): void {
    this.inlineSuggestionsOn = on;
    this.render();
  }

  dispose(): void {
    this.item.dispose();
  }

  private render(): void {
    const state = this.serverState;
    this.item.backgroundColor = undefined;

    // A server problem matters more than the on/off switch, so it is shown first.
    if (state.kind === 'error') {
      this.item.text = '$(error) tiny-copilot: error';
      this.item.tooltip = `${state.message}\nClick for the log and a restart.`;
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      return;
    }
    if (state.kind === 'starting') {
      this.item.text = '$(loading~spin) tiny-copilot: starting';
      this.item.tooltip = 'tiny-copilot is starting the language server.';
      return;
    }
    if (state.kind === 'loading') {
      const percentage = state.percentage !== undefined ? ` ${state.percentage}%` : '';
      this.item.text = `$(loading~spin) tiny-copilot: loading${percentage}`;
      this.item.tooltip = `tiny-copilot is ${state.message}.`;
      return;
    }
    if (this.disabledReason !== undefined) {
      this.item.text = '$(circle-slash) tiny-copilot: disabled';
      this.item.tooltip = `${this.disabledReason} Click to turn them on.`;
      return;
    }
    if (!this.inlineSuggestionsOn) {
      this.item.text = '$(circle-slash) tiny-copilot: inline suggestions off';
      this.item.tooltip =
        "VS Code's editor.inlineSuggest.enabled setting is off, so no ghost text can appear. " +
        'Click to turn it on, or run "tiny-copilot: Turn On VS Code Inline Suggestions".';
      return;
    }
    if (state.kind === 'stopped') {
      this.item.text = '$(debug-stop) tiny-copilot: stopped';
      this.item.tooltip = 'The language server is not running. Click to restart it.';
      return;
    }
    this.item.text = '$(check) tiny-copilot: ready';
    this.item.tooltip = 'The model is loaded; completions appear as ghost text while you type.';
  }
}
