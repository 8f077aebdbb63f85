/**
 * Starting, stopping and restarting the language client, and turning its events (progress,
 * messages, state changes) into status bar states.
 *
 * Ghost text comes from vscode-languageclient's built-in inline completion feature, which maps
 * textDocument/inlineCompletion onto VS Code's inline completion API; the middleware here only
 * skips requests for documents where completions are turned off.
 */
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  MessageType,
  Middleware,
  ServerOptions,
  ShowMessageNotification,
  ShowMessageParams,
  State,
  TransportKind,
} from 'vscode-languageclient/node';
import { locateServer, ServerNotFoundError } from './serverLocator';
import { isEnabledFor, readClientSettings, readServerSettings } from './settings';
import { StatusBar } from './statusBar';

const CLIENT_ID = 'tinyCopilot';
const CLIENT_NAME = 'tiny-copilot';

export class ServerController implements vscode.Disposable {
  private client: LanguageClient | undefined;
  /** True while stop() runs, so that the resulting Stopped state is not reported as a crash. */
  private stopping = false;
  /** The active editor's document when the user last typed while the model was not ready. */
  private editedWhileLoading: string | undefined;
  private readonly editWatch: vscode.Disposable;

  constructor(
    private readonly outputChannel: vscode.LogOutputChannel,
    private readonly statusBar: StatusBar,
  ) {
    // Watched here rather than in the middleware: text typed before the client has started
    // reaches the server in didOpen, and VS Code sends no inline completion request for it.
    // Only the active editor counts: output channels are documents too, and their logs change them.
    this.editWatch = vscode.workspace.onDidChangeTextDocument((event) => {
      const typedHere = event.document === vscode.window.activeTextEditor?.document;
      if (typedHere && event.contentChanges.length > 0 && this.statusBar.state.kind !== 'ready') {
        this.editedWhileLoading = event.document.uri.toString();
      }
    });
  }

  async start(): Promise<void> {
    if (this.client !== undefined) {
      return;
    }
    this.statusBar.setServerState({ kind: 'starting' });

    const settings = readClientSettings();
    let launch;
    try {
      launch = await locateServer({
        serverPath: settings.serverPath,
        pythonPath: settings.pythonPath,
        searchPath: process.env.PATH,
      });
    } catch (error) {
      if (error instanceof ServerNotFoundError) {
        this.reportStartFailure(error.message);
        return;
      }
      throw error;
    }
    this.outputChannel.info(`Starting ${[launch.command, ...launch.args].join(' ')} (from ${launch.origin})`);

    const client = this.createClient({
      command: launch.command,
      args: [...launch.args],
      transport: TransportKind.stdio,
    });
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      // The client already logged the details. Keep the object so that restart() can dispose it.
      this.reportStartFailure(`The language server failed to start: ${errorMessage(error)}`);
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) {
      return;
    }
    this.stopping = true;
    try {
      await client.dispose();
    } catch (error) {
      this.outputChannel.warn(`Stopping the language server failed: ${errorMessage(error)}`);
    } finally {
      this.stopping = false;
      this.statusBar.setServerState({ kind: 'stopped' });
    }
  }

  async restart(): Promise<void> {
    this.outputChannel.info('Restarting the language server');
    await this.stop();
    await this.start();
  }

  /** Send the current server settings; the server applies them without a restart. */
  async sendSettings(): Promise<void> {
    if (this.client === undefined || !this.client.isRunning()) {
      return;
    }
    await this.client.sendNotification(DidChangeConfigurationNotification.type, {
      settings: readServerSettings(),
    });
  }

  async dispose(): Promise<void> {
    this.editWatch.dispose();
    await this.stop();
  }

  private createClient(serverOptions: ServerOptions): LanguageClient {
    const clientOptions: LanguageClientOptions = {
      // Every text document goes to the server, because it and the middleware decide per language.
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      outputChannel: this.outputChannel,
      traceOutputChannel: this.outputChannel,
      // A function: after a crash, vscode-languageclient starts a new server and calls it again,
      // so that server gets the current settings, not those from when this client was created.
      initializationOptions: () => readServerSettings(),
      middleware: this.createMiddleware(),
    };
    const client = new LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, clientOptions);

    // Registered before start(), so it replaces the client's default showMessage handler.
    client.onNotification(ShowMessageNotification.type, (params) => this.showServerMessage(params));
    client.onDidChangeState((event) => {
      if (event.newState === State.Running && this.statusBar.state.kind === 'starting') {
        // The server replies to initialize at once and then loads the model, reporting it with
        // $/progress. Until that ends, requests get no suggestion, so this is not ready yet.
        this.statusBar.setServerState({ kind: 'loading', message: 'loading the model' });
      } else if (event.newState === State.Stopped && !this.stopping) {
        this.statusBar.setServerState({
          kind: 'error',
          message: 'The language server stopped. See the tiny-copilot log for its output.',
        });
      }
    });
    return client;
  }

  private createMiddleware(): Middleware {
    return {
      provideInlineCompletionItems: (document, position, context, token, next) =>
        isEnabledFor(document.languageId) ? next(document, position, context, token) : null,
      // The ghost text shows the same suggestion. As a completion item it also opened the suggest
      // widget at every keystroke, and Enter at a line end took that item instead of breaking the line.
      provideCompletionItem: () => null,
      handleWorkDoneProgress: (token, params, next) => {
        if (params.kind === 'end') {
          // A failed load reports its error with window/showMessage before this end, so keep it.
          if (this.statusBar.state.kind === 'loading') {
            this.statusBar.setServerState({ kind: 'ready' });
            this.requestAgainOnceReady();
          }
        } else if (params.kind === 'begin') {
          this.statusBar.setServerState({
            kind: 'loading',
            message: params.message ?? params.title,
            percentage: params.percentage,
          });
        } else {
          const current = this.statusBar.state;
          this.statusBar.setServerState({
            kind: 'loading',
            message: params.message ?? (current.kind === 'loading' ? current.message : 'loading'),
            percentage: params.percentage,
          });
        }
        next(token, params);
      },
    };
  }

  /** Show and log a server message. An error also sets the status bar to the error state. */
  private showServerMessage(params: ShowMessageParams): void {
    // The server already starts its messages with "tiny-copilot: ".
    switch (params.type) {
      case MessageType.Error:
        this.outputChannel.error(params.message);
        this.statusBar.setServerState({ kind: 'error', message: params.message });
        void vscode.window.showErrorMessage(params.message);
        break;
      case MessageType.Warning:
        this.outputChannel.warn(params.message);
        void vscode.window.showWarningMessage(params.message);
        break;
      default:
        this.outputChannel.info(params.message);
        void vscode.window.showInformationMessage(params.message);
    }
  }

  /**
   * VS Code requests ghost text only when the user types, so text typed while the server started
   * or loaded the model would show nothing until the next keystroke. Request it again in the
   * active editor when that is where the user typed.
   */
  private requestAgainOnceReady(): void {
    const edited = this.editedWhileLoading;
    this.editedWhileLoading = undefined;
    const document = vscode.window.activeTextEditor?.document;
    if (document !== undefined && document.uri.toString() === edited && isEnabledFor(document.languageId)) {
      void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    }
  }

  private reportStartFailure(message: string): void {
    this.outputChannel.error(message);
    this.statusBar.setServerState({ kind: 'error', message });
    void vscode.window.showErrorMessage(`tiny-copilot: ${message}`, 'Open Settings', 'Show Log').then((choice) => {
      if (choice === 'Open Settings') {
        void vscode.commands.executeCommand('workbench.action.openSettings', 'tinyCopilot');
      } else if (choice === 'Show Log') {
        this.outputChannel.show();
      }
    });
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
