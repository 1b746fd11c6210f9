// Drives the OHIF viewer served by a dicom-node in headless Chromium (run by tests/test_ohif.py).
//
//   node ohif.mjs '{"baseUrl": ..., "studyInstanceUid": ..., "studyListText": [...],
//                   "viewerText": [...], "artifacts": DIR, "deadlineMs": N, "chromium": PATH}'
//
// Opens the study list, waits for every `studyListText` to show, then opens the viewer for the
// study and waits until the viewport canvas shows image pixels and every `viewerText` shows. Prints one JSON report on stdout (what
// was seen, every network request with its status, console errors); screenshots go to DIR.
// The exit status is 0 whenever a report was written: the test judges the report.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';

const CONNECTION_ERROR = 'Data Source Connection Error';
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
// A pixel is "image" when it is clearly brighter than the black background of the viewport.
const BRIGHT = 40;
// The viewport shows an image when at least this fraction of it is bright (tests/test_ohif.py).
const IMAGE_FRACTION = 0.05;

const options = JSON.parse(process.argv[2]);
const deadline = Date.now() + options.deadlineMs;
const report = {
  studyList: { missing: [], connectionError: false, screenshot: null },
  viewer: {
    missing: [],
    canvases: 0,
    canvasPixels: 0,
    canvasBright: 0,
    screenshotPixels: 0,
    screenshotBright: 0,
    screenshot: null,
  },
  network: [],
  console: [],
  error: null,
};

function remaining() {
  return Math.max(1, deadline - Date.now());
}

// Pixels of the viewport: the largest on-screen cornerstone canvas (a 2D canvas that cornerstone
// copies each rendered frame into; thumbnails are smaller canvases), how many pixels it has and
// how many are bright. Overlays (text, spinners, tour pop-ups) are DOM elements above the
// canvas, so they are not counted here.
function viewportPixels(threshold) {
  const canvases = [...document.querySelectorAll('canvas.cornerstone-canvas')];
  let index = -1;
  for (const [i, canvas] of canvases.entries()) {
    const area = canvas.width * canvas.height;
    if (area > 0 && (index < 0 || area > canvases[index].width * canvases[index].height)) index = i;
  }
  const found = { canvases: canvases.length, index, pixels: 0, bright: 0 };
  const context = index < 0 ? null : canvases[index].getContext('2d');
  if (!context) return found;
  const data = context.getImageData(0, 0, canvases[index].width, canvases[index].height).data;
  for (let i = 0; i < data.length; i += 4) {
    found.pixels += 1;
    if (Math.max(data[i], data[i + 1], data[i + 2]) > threshold) found.bright += 1;
  }
  return found;
}

// The same count on a PNG screenshot, as the user sees it (overlays included).
function brightInPng(buffer) {
  const png = PNG.sync.read(buffer);
  let bright = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (Math.max(png.data[i], png.data[i + 1], png.data[i + 2]) > BRIGHT) bright += 1;
  }
  return { pixels: png.width * png.height, bright };
}

async function textShown(page, text) {
  return (await page.getByText(text, { exact: false }).count()) > 0;
}

// The texts of `wanted` not (yet) on the page.
async function textsMissing(page, wanted) {
  const missing = [];
  for (const text of wanted) {
    if (!(await textShown(page, text))) missing.push(text);
  }
  return missing;
}

const browser = await chromium.launch({
  executablePath: options.chromium,
  headless: true,
  args: FLAGS,
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('response', response => {
    const request = response.request();
    report.network.push({
      method: request.method(),
      url: response.url(),
      status: response.status(),
      accept: request.headers()['accept'] ?? null,
    });
  });
  page.on('requestfailed', request => {
    report.network.push({
      method: request.method(),
      url: request.url(),
      status: null,
      failure: request.failure()?.errorText ?? 'failed',
    });
  });
  page.on('console', message => {
    if (message.type() === 'error' || message.type() === 'warning') {
      report.console.push(`${message.type()}: ${message.text()}`.slice(0, 500));
    }
  });
  page.on('pageerror', error => report.console.push(`pageerror: ${error.message}`.slice(0, 500)));

  // 1. The study list.
  await page.goto(`${options.baseUrl}/`, { waitUntil: 'domcontentloaded', timeout: remaining() });
  let missing = options.studyListText;
  while (Date.now() < deadline) {
    missing = await textsMissing(page, missing);
    if (missing.length === 0 || (await textShown(page, CONNECTION_ERROR))) break;
    await page.waitForTimeout(250);
  }
  report.studyList.missing = missing;
  report.studyList.connectionError = await textShown(page, CONNECTION_ERROR);
  report.studyList.screenshot = join(options.artifacts, 'study-list.png');
  await page.screenshot({ path: report.studyList.screenshot });

  // OHIF's "investigational use" banner sits over the bottom of the page: hide it (best effort).
  const hide = page.getByRole('button', { name: 'Confirm and hide' });
  if ((await hide.count()) > 0) await hide.first().click({ timeout: 5000 }).catch(() => {});

  // 2. The viewer for the study: wait for image pixels in the viewport.
  const viewerUrl = `${options.baseUrl}/viewer?StudyInstanceUIDs=${options.studyInstanceUid}`;
  await page.goto(viewerUrl, { waitUntil: 'domcontentloaded', timeout: remaining() });
  let seen = { canvases: 0, index: -1, pixels: 0, bright: 0 };
  missing = options.viewerText;
  while (Date.now() < deadline) {
    seen = await page.evaluate(viewportPixels, BRIGHT);
    missing = await textsMissing(page, missing);
    if (seen.bright > IMAGE_FRACTION * seen.pixels && missing.length === 0) break;
    if (await textShown(page, CONNECTION_ERROR)) break;
    await page.waitForTimeout(250);
  }
  report.viewer.missing = missing;
  report.viewer.canvases = seen.canvases;
  report.viewer.canvasPixels = seen.pixels;
  report.viewer.canvasBright = seen.bright;
  report.viewer.connectionError = await textShown(page, CONNECTION_ERROR);
  // OHIF's first-visit tour pops up over the viewport: skip it (best effort).
  const skip = page.getByRole('button', { name: 'Skip all' });
  if ((await skip.count()) > 0) await skip.first().click({ timeout: 5000 }).catch(() => {});
  report.viewer.screenshot = join(options.artifacts, 'viewer.png');
  await page.screenshot({ path: report.viewer.screenshot });
  if (seen.index >= 0) {
    const path = join(options.artifacts, 'viewport.png');
    const viewport = page.locator('canvas.cornerstone-canvas').nth(seen.index);
    const png = await viewport.screenshot({ path, timeout: remaining() });
    const counted = brightInPng(png);
    report.viewer.viewportScreenshot = path;
    report.viewer.screenshotPixels = counted.pixels;
    report.viewer.screenshotBright = counted.bright;
  }
} catch (error) {
  report.error = String(error?.stack ?? error);
} finally {
  await browser.close();
}
writeFileSync(join(options.artifacts, 'report.json'), JSON.stringify(report, null, 2));
process.stdout.write(JSON.stringify(report));
