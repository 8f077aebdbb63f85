// Bundle the extension and vscode-languageclient into one file, so the .vsix ships no node_modules.
// Usage: node esbuild.mjs [--watch]
import * as esbuild from 'esbuild';

const options = {
  entryPoints: ['src/extension.ts'],
  bundle: true,
  outfile: 'dist/extension.js',
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // The `vscode` module exists only inside the extension host.
  external: ['vscode'],
  minify: true,
  sourcemap: false,
  logLevel: 'warning',
};

if (process.argv.includes('--watch')) {
  const context = await esbuild.context({ ...options, minify: false, sourcemap: 'inline' });
  await context.watch();
} else {
  await esbuild.build(options);
}
