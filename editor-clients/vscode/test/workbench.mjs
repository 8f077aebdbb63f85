// Driving the VS Code workbench in Chromium: open a file, type, read and accept ghost text.
//
// Selectors are VS Code 1.100 DOM class names (code-server 4.100.3); a newer VS Code may rename them.
import { sleep } from './codeServer.mjs';

const GHOST_POLL_INTERVAL_MS = 100;
const STATUS_ITEM_TEXT = 'tiny-copilot';

/** Open the workbench for `folder` and wait until it has rendered. */
export async function openWorkbench(page, url, folder, timeoutMs) {
  await page.goto(`${url}/?folder=${encodeURIComponent(folder)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: timeoutMs });
}

/** Open `fileName` with Quick Open and wait until its editor has the focus. */
export async function openFile(page, fileName, timeoutMs) {
  await page.locator('.monaco-workbench').click({ position: { x: 640, y: 300 } });
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: timeoutMs });
  await input.fill(fileName);
  await page.locator('.quick-input-list .monaco-list-row').first().waitFor({ timeout: timeoutMs });
  await page.keyboard.press('Enter');
  await page.locator(`.tab.active[aria-label*="${fileName}"]`).waitFor({ timeout: timeoutMs });
  await page.locator('.monaco-editor.focused').waitFor({ timeout: timeoutMs });
}

/** Run the command titled `title` (as shown in the Command Palette) and wait for the palette to close. */
export async function runCommand(page, title, timeoutMs) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: timeoutMs });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: timeoutMs });
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: timeoutMs });
}

/** Return the text of the extension's status bar item, or null while it is not shown. */
export async function statusText(page) {
  const item = page.locator('.statusbar-item', { hasText: STATUS_ITEM_TEXT }).first();
  if ((await item.count()) === 0) {
    return null;
  }
  return (await item.innerText()).trim();
}

/** Hover over the extension's status bar item and return the text of the tooltip it shows. */
export async function statusTooltip(page, timeoutMs) {
  await page.locator('.statusbar-item', { hasText: STATUS_ITEM_TEXT }).first().hover();
  const hover = page.locator('.workbench-hover').first();
  await hover.waitFor({ timeout: timeoutMs });
  const text = (await hover.innerText()).trim();
  await page.mouse.move(0, 0);
  return text;
}

/** Wait until the status bar item's text matches `pattern`, and return the text. */
export async function waitForStatus(page, pattern, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let text = null;
  while (Date.now() < deadline) {
    text = await statusText(page);
    if (text !== null && pattern.test(text)) {
      return text;
    }
    await sleep(GHOST_POLL_INTERVAL_MS);
  }
  throw new Error(`status bar item did not match ${pattern} within ${timeoutMs} ms; last text: ${JSON.stringify(text)}`);
}

/**
 * Return the ghost text shown in the focused editor, or '' when none is shown.
 *
 * The first line is inline text decorated with .ghost-text-decoration; further lines of a
 * multi-line suggestion are view lines inside the .suggest-preview-text view zone below it.
 * Monaco renders spaces as U+00A0, which are turned back into spaces.
 */
export async function readGhostText(page) {
  return page.evaluate(() => {
    const editor = document.querySelector('.monaco-editor.focused');
    if (editor === null) {
      return '';
    }
    const inline = [...editor.querySelectorAll('.view-lines .ghost-text-decoration')]
      .map((element) => element.textContent ?? '')
      .join('');
    const zone = editor.querySelector('.suggest-preview-text');
    const extraLines = zone === null ? [] : [...zone.querySelectorAll('.view-line')].map((line) => line.textContent ?? '');
    return [inline, ...extraLines].join('\n').replace(/\u00a0/g, ' ');
  });
}

/** Return the HTML of the ghost text elements, for the report of a run. */
export async function describeGhostDom(page) {
  return page.evaluate(() => {
    const editor = document.querySelector('.monaco-editor.focused');
    if (editor === null) {
      return '';
    }
    const inline = [...editor.querySelectorAll('.view-lines .ghost-text-decoration')].map((element) => element.outerHTML);
    const zone = editor.querySelector('.suggest-preview-text');
    return [...inline, zone?.outerHTML ?? ''].join('\n');
  });
}

/**
 * Wait for ghost text and return it. VS Code requests inline completions after each edit. When
 * none is shown after `retriggerMs` (null: never), the Trigger Inline Suggestion command requests
 * them again. It runs from the Command Palette, because Alt+\ pressed by Playwright did not reach
 * that command in code-server 4.100.3.
 */
export async function waitForGhostText(page, timeoutMs, retriggerMs) {
  const deadline = Date.now() + timeoutMs;
  let nextTrigger = retriggerMs === null ? Infinity : Date.now() + retriggerMs;
  while (Date.now() < deadline) {
    const text = await readGhostText(page);
    if (text !== '') {
      return text;
    }
    if (Date.now() >= nextTrigger) {
      await runCommand(page, 'Trigger Inline Suggestion', timeoutMs);
      nextTrigger = Date.now() + retriggerMs;
    }
    await sleep(GHOST_POLL_INTERVAL_MS);
  }
  throw new Error(`no ghost text (.ghost-text-decoration) appeared within ${timeoutMs} ms`);
}
