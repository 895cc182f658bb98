// The Flow extension's client: starts `flow lsp` (the language server ships inside the
// `flow` binary) and connects VS Code to it. Highlighting without the server comes from
// the TextMate grammar in syntaxes/.
'use strict';

const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration('flow');
  const command = config.get('server.path') || 'flow';
  const extraEnv = config.get('server.extraEnv') || {};
  return {
    command,
    args: ['lsp'],
    options: { env: Object.assign({}, process.env, extraEnv) },
  };
}

async function start() {
  const options = serverOptions();
  client = new LanguageClient(
    'flow',
    'Flow',
    options,
    {
      documentSelector: [
        { scheme: 'file', language: 'flow' },
        { scheme: 'untitled', language: 'flow' },
      ],
    },
  );
  try {
    await client.start();
  } catch (error) {
    vscode.window.showErrorMessage(
      `Flow: could not start \`${options.command} lsp\` (${error.message}). ` +
        'Install the `flow` binary or set "flow.server.path" to it.',
    );
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('flow.restartServer', async () => {
      if (client) {
        await client.stop();
      }
      await start();
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('flow.server')) {
        await vscode.commands.executeCommand('flow.restartServer');
      }
    }),
  );
  await start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
