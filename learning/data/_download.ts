import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { hashFile } from "./_hash.ts";

/** Settings of {@linkcode downloadFile}. */
export interface DownloadOptions {
  /** MD5 (hex) the downloaded file must have. */
  expectedMd5: string;
  /** Maximum size in bytes; a larger response is rejected and not retried. */
  maxBytes: number;
  /** An attempt is aborted when no bytes arrive for this many milliseconds (connecting included). Default 60,000. */
  timeoutMs: number;
  /** Attempts after the first one, for network errors, timeouts, incomplete bodies and HTTP 408, 429 and 5xx. Default 3. */
  retries: number;
  /** Wait before the first retry in milliseconds, doubled for each further retry. Default 2,000. */
  retryDelayMs: number;
  /**
   * Accepts plain `http:` for the loopback hosts 127.0.0.1, ::1 and localhost.
   * Meant for tests against a local server; other hosts always need `https:`.
   */
  allowHttpLoopback: boolean;
  /** Receives one line per retry and per replaced stale file. Default `console.warn`. */
  log: (message: string) => void;
}

/** Outcome of {@linkcode downloadFile}. */
export interface DownloadResult {
  /** Destination path. */
  path: string;
  /** File size in bytes. */
  bytes: number;
  /** MD5 (hex) of the file, equal to the expected one. */
  md5: string;
  /** False when `path` already had the expected MD5 and nothing was fetched. */
  downloaded: boolean;
  /** Number of HTTP attempts made (0 when nothing was fetched). */
  attempts: number;
}

const DEFAULTS = {
  timeoutMs: 60_000,
  retries: 3,
  retryDelayMs: 2_000,
  allowHttpLoopback: false,
  log: (message: string) => console.warn(message),
};

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** An attempt failure; `retryable` marks failures that another attempt may fix. */
class AttemptError extends Error {
  constructor(message: string, readonly retryable: boolean, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * Downloads `url` to `destPath` through a temporary file in the same folder,
 * renamed into place only when the body is complete and its MD5 matches.
 * Skips the download when `destPath` already has the expected MD5.
 */
export async function downloadFile(
  url: string,
  destPath: string,
  options: Partial<DownloadOptions> & Pick<DownloadOptions, "expectedMd5" | "maxBytes">,
): Promise<DownloadResult> {
  const settings: DownloadOptions = { ...DEFAULTS, ...options };
  const expectedMd5 = settings.expectedMd5.toLowerCase();
  checkUrl(url, settings.allowHttpLoopback);

  const existing = await existingFile(destPath);
  if (existing !== null) {
    const md5 = await hashFile(destPath, "md5");
    if (md5 === expectedMd5) return { path: destPath, bytes: existing.size, md5, downloaded: false, attempts: 0 };
    settings.log(`${destPath} exists with MD5 ${md5}, expected ${expectedMd5}; downloading ${url} again.`);
  }
  await Deno.mkdir(dirname(destPath), { recursive: true });

  const attempts = settings.retries + 1;
  for (let attempt = 1;; attempt++) {
    try {
      const bytes = await downloadOnce(url, destPath, { ...settings, expectedMd5 });
      return { path: destPath, bytes, md5: expectedMd5, downloaded: true, attempts: attempt };
    } catch (error) {
      if (!(error instanceof AttemptError) || !error.retryable) throw error;
      if (attempt >= attempts) {
        throw new Error(
          `Download of ${url} failed after ${attempt} attempt(s): ${error.message}. ` +
            `Check the network connection, or raise the timeoutMs or retries option.`,
          { cause: error },
        );
      }
      const delayMs = settings.retryDelayMs * 2 ** (attempt - 1);
      settings.log(
        `Download attempt ${attempt} of ${attempts} for ${url} failed (${error.message}); retrying in ${delayMs} ms.`,
      );
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

function checkUrl(url: string, allowHttpLoopback: boolean): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`Invalid download URL ${JSON.stringify(url)}; give an absolute https:// URL.`);
  }
  if (parsed.protocol === "https:") return;
  if (parsed.protocol === "http:" && allowHttpLoopback && LOOPBACK_HOSTS.has(parsed.hostname)) return;
  throw new Error(
    `Rejected download URL ${url}: only https:// URLs are accepted, because plain http can be altered in ` +
      `transit. Use the https:// address of the file.`,
  );
}

async function existingFile(path: string): Promise<Deno.FileInfo | null> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? info : null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Runs one HTTP attempt and returns the number of bytes written to `destPath`. */
async function downloadOnce(url: string, destPath: string, settings: DownloadOptions): Promise<number> {
  const tempPath = `${destPath}.partial-${crypto.randomUUID()}`;
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const restartTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), settings.timeoutMs);
  };
  // Wraps network calls so their failures become retryable, and an abort becomes a timeout.
  const network = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      if (controller.signal.aborted) {
        throw new AttemptError(`timed out: no data for ${settings.timeoutMs} ms`, true, { cause: error });
      }
      throw new AttemptError(`network error: ${(error as Error).message}`, true, { cause: error });
    }
  };

  let file: Deno.FsFile | undefined;
  restartTimer();
  try {
    const response = await fetchFollowingRedirects(
      url,
      settings.allowHttpLoopback,
      (target) => network(() => fetch(target, { signal: controller.signal, redirect: "manual" })),
    );
    if (!response.ok) {
      await response.body?.cancel();
      const retryable = response.status >= 500 || response.status === 408 || response.status === 429;
      throw new AttemptError(`HTTP ${response.status} ${response.statusText} from ${url}`, retryable);
    }
    const lengthHeader = response.headers.get("content-length");
    const declaredBytes = lengthHeader === null ? null : Number(lengthHeader);
    if (declaredBytes !== null && declaredBytes > settings.maxBytes) {
      await response.body?.cancel();
      throw sizeError(url, `declares ${declaredBytes} bytes`, settings.maxBytes);
    }
    if (response.body === null) throw new AttemptError(`empty response body from ${url}`, true);

    file = await Deno.open(tempPath, { write: true, createNew: true });
    const hash = createHash("md5");
    const reader = response.body.getReader();
    let bytes = 0;
    for (;;) {
      const { done, value } = await network(() => reader.read());
      if (done) break;
      restartTimer();
      bytes += value.length;
      if (bytes > settings.maxBytes) {
        await reader.cancel();
        throw sizeError(url, `sent more than ${settings.maxBytes} bytes`, settings.maxBytes);
      }
      hash.update(value);
      await writeAll(file, value);
    }
    if (declaredBytes !== null && bytes !== declaredBytes) {
      throw new AttemptError(`incomplete body: ${bytes} of ${declaredBytes} bytes`, true);
    }
    file.close();
    file = undefined;

    const md5 = hash.digest("hex");
    if (md5 !== settings.expectedMd5) {
      throw new AttemptError(
        `MD5 mismatch for ${url}: expected ${settings.expectedMd5}, found ${md5}. The server sent a different ` +
          `or corrupt file; check the URL and the expected MD5, then download again.`,
        false,
      );
    }
    await Deno.rename(tempPath, destPath);
    return bytes;
  } finally {
    clearTimeout(timer);
    file?.close();
    await Deno.remove(tempPath).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) settings.log(`Cannot remove ${tempPath}: ${error.message}`);
    });
  }
}

const MAX_REDIRECTS = 10;

/** Follows up to 10 redirects, checking each target URL before it is requested. */
async function fetchFollowingRedirects(
  url: string,
  allowHttpLoopback: boolean,
  request: (target: string) => Promise<Response>,
): Promise<Response> {
  let target = url;
  for (let redirects = 0;; redirects++) {
    const response = await request(target);
    const location = response.headers.get("location");
    if (![301, 302, 303, 307, 308].includes(response.status) || location === null) return response;
    await response.body?.cancel();
    if (redirects === MAX_REDIRECTS) {
      throw new AttemptError(`${url} redirected more than ${MAX_REDIRECTS} times; check the URL`, false);
    }
    const next = new URL(location, target).href;
    try {
      checkUrl(next, allowHttpLoopback);
    } catch (error) {
      throw new AttemptError(`${target} redirected to ${next}. ${(error as Error).message}`, false);
    }
    target = next;
  }
}

function sizeError(url: string, problem: string, maxBytes: number): AttemptError {
  return new AttemptError(
    `${url} ${problem}, over the maxBytes limit of ${maxBytes}. Check the URL, or raise the maxBytes option ` +
      `if the file is really that large.`,
    false,
  );
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await file.write(data.subarray(written));
}
