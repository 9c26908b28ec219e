import assert from "node:assert/strict";
import { downloadCifarBinary } from "../learning/data/cifar_binary.ts";
import { assertBytesEqual, md5Hex } from "./_fixtures.ts";

/** A local HTTP server whose responses the test scripts, one handler per request in order. */
async function withServer(
  handlers: ((request: Request) => Response | Promise<Response>)[],
  body: (baseUrl: string, requests: () => number) => Promise<void>,
): Promise<void> {
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const handler = handlers[Math.min(count, handlers.length - 1)];
    count++;
    return handler(request);
  });
  try {
    await body(`http://127.0.0.1:${server.addr.port}`, () => count);
  } finally {
    await server.shutdown();
  }
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

const payload = new Uint8Array(200_000).map((_, i) => (i * 7919) % 251);
const payloadMd5 = md5Hex(payload);
const fast = { allowHttpLoopback: true, retryDelayMs: 10, timeoutMs: 2_000, expectedMd5: payloadMd5 };

/** Returns a body that sends `firstBytes` of the payload, then stalls until `release` resolves. */
function stalledBody(firstBytes: number, release: Promise<void>): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(payload.slice(0, firstBytes));
        return;
      }
      await release;
      controller.close();
    },
  });
}

Deno.test("download rejects non-https URLs", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      downloadCifarBinary("http://example.com/c.tar.gz", `${dir}/c.tar.gz`),
      /only https:\/\/ URLs are accepted/,
    );
    await assert.rejects(downloadCifarBinary("ftp://example.com/c.tar.gz", `${dir}/c.tar.gz`), /only https:\/\//);
    await assert.rejects(downloadCifarBinary("not a url", `${dir}/c.tar.gz`), /Invalid download URL "not a url"/);
    // The loopback exception covers loopback hosts only.
    await assert.rejects(
      downloadCifarBinary("http://example.com/c.tar.gz", `${dir}/c.tar.gz`, { allowHttpLoopback: true }),
      /only https:\/\//,
    );
    await assert.rejects(downloadCifarBinary("http://127.0.0.1:9/c.tar.gz", `${dir}/c.tar.gz`), /only https:\/\//);
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("download writes verified file", async () => {
  await withServer([() => new Response(payload)], async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      const dest = `${dir}/sub/c.tar.gz`;
      const result = await downloadCifarBinary(`${baseUrl}/c.tar.gz`, dest, fast);
      assert.deepEqual(result, { path: dest, bytes: payload.length, md5: payloadMd5, downloaded: true, attempts: 1 });
      assertBytesEqual(await Deno.readFile(dest), payload, "downloaded file");
      assert.deepEqual(await listDir(`${dir}/sub`), ["c.tar.gz"]);

      // A second call finds the verified file and sends no request.
      const again = await downloadCifarBinary(`${baseUrl}/c.tar.gz`, dest, fast);
      assert.equal(again.downloaded, false);
      assert.equal(requests(), 1);
    });
  });
});

Deno.test("download replaces stale file", async () => {
  await withServer([() => new Response(payload)], async (baseUrl) => {
    await withTempDir(async (dir) => {
      const dest = `${dir}/c.tar.gz`;
      await Deno.writeTextFile(dest, "stale");
      const log: string[] = [];
      const result = await downloadCifarBinary(`${baseUrl}/c.tar.gz`, dest, { ...fast, log: (line) => log.push(line) });
      assert.equal(result.downloaded, true);
      assertBytesEqual(await Deno.readFile(dest), payload, "downloaded file");
      assert.match(log[0], /exists with MD5 .*downloading .* again/);
    });
  });
});

Deno.test("download rejects MD5 mismatch", async () => {
  const other = payload.map((value) => value ^ 1);
  await withServer([() => new Response(other)], async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      await assert.rejects(
        downloadCifarBinary(`${baseUrl}/c.tar.gz`, `${dir}/c.tar.gz`, fast),
        new RegExp(`MD5 mismatch .*expected ${payloadMd5}, found ${md5Hex(other)}`),
      );
      assert.equal(requests(), 1);
      assert.deepEqual(await listDir(dir), []);
    });
  });
});

Deno.test("download enforces maxBytes", async () => {
  const declared = () => new Response(payload);
  const undeclared = () => new Response(ReadableStream.from([payload.slice(0, 100_000), payload.slice(100_000)]));
  for (
    const [handler, pattern] of [[declared, /declares 200000 bytes/], [
      undeclared,
      /sent more than 150000 bytes/,
    ]] as const
  ) {
    await withServer([handler], async (baseUrl, requests) => {
      await withTempDir(async (dir) => {
        await assert.rejects(
          downloadCifarBinary(`${baseUrl}/c.tar.gz`, `${dir}/c.tar.gz`, { ...fast, maxBytes: 150_000 }),
          new RegExp(`${pattern.source}, over the maxBytes limit of 150000.*raise the maxBytes option`),
        );
        assert.equal(requests(), 1, "a size error is not retried");
        assert.deepEqual(await listDir(dir), []);
      });
    });
  }
});

/** A raw TCP server that answers the n-th connection with `responses[n]` bytes, then closes it. */
async function withRawServer(
  responses: Uint8Array[],
  body: (baseUrl: string, requests: () => number) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let count = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      const response = responses[Math.min(count, responses.length - 1)];
      count++;
      const buffer = new Uint8Array(4096);
      let request = "";
      while (!request.includes("\r\n\r\n")) {
        const read = await conn.read(buffer);
        if (read === null) break;
        request += new TextDecoder().decode(buffer.subarray(0, read));
      }
      let written = 0;
      while (written < response.length) written += await conn.write(response.subarray(written));
      conn.close();
    }
  })();
  try {
    await body(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`, () => count);
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
}

function rawResponse(declaredLength: number, data: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(
    `HTTP/1.1 200 OK\r\nContent-Length: ${declaredLength}\r\nConnection: close\r\n\r\n`,
  );
  const bytes = new Uint8Array(head.length + data.length);
  bytes.set(head);
  bytes.set(data, head.length);
  return bytes;
}

Deno.test("download retries partial body", async () => {
  // The first connection closes after 50,000 of the 200,000 declared bytes.
  const responses = [rawResponse(payload.length, payload.slice(0, 50_000)), rawResponse(payload.length, payload)];
  await withRawServer(responses, async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      const log: string[] = [];
      const dest = `${dir}/c.tar.gz`;
      const result = await downloadCifarBinary(`${baseUrl}/c.tar.gz`, dest, { ...fast, log: (line) => log.push(line) });
      assert.equal(result.attempts, 2);
      assert.equal(requests(), 2);
      assertBytesEqual(await Deno.readFile(dest), payload, "downloaded file");
      assert.equal(log.length, 1);
      assert.match(log[0], /attempt 1 of 4 .* failed .*retrying in 10 ms/);
      assert.deepEqual(await listDir(dir), ["c.tar.gz"]);
    });
  });
});

Deno.test("download gives up on repeated partial bodies", async () => {
  await withRawServer([rawResponse(payload.length, payload.slice(0, 50_000))], async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      await assert.rejects(
        downloadCifarBinary(`${baseUrl}/c.tar.gz`, `${dir}/c.tar.gz`, { ...fast, retries: 2, log: () => {} }),
        /failed after 3 attempt\(s\)/,
      );
      assert.equal(requests(), 3);
      assert.deepEqual(await listDir(dir), [], "no partial file is left behind");
    });
  });
});

Deno.test("download retries server errors", async () => {
  const handlers = [() => new Response("busy", { status: 503 }), () => new Response(payload)];
  await withServer(handlers, async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      const result = await downloadCifarBinary(`${baseUrl}/c.tar.gz`, `${dir}/c.tar.gz`, { ...fast, log: () => {} });
      assert.equal(result.attempts, 2);
      assert.equal(requests(), 2);
    });
  });
});

Deno.test("download does not retry 404", async () => {
  await withServer([() => new Response("missing", { status: 404 })], async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      await assert.rejects(downloadCifarBinary(`${baseUrl}/c.tar.gz`, `${dir}/c.tar.gz`, fast), /HTTP 404/);
      assert.equal(requests(), 1);
    });
  });
});

Deno.test("download times out stalled body", async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const stalled = () => new Response(stalledBody(1_000, released));
  await withServer([stalled], async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      const log: string[] = [];
      const started = performance.now();
      try {
        await assert.rejects(
          downloadCifarBinary(`${baseUrl}/c.tar.gz`, `${dir}/c.tar.gz`, {
            ...fast,
            timeoutMs: 200,
            retries: 1,
            log: (line) => log.push(line),
          }),
          /failed after 2 attempt\(s\): timed out: no data for 200 ms.*raise the timeoutMs or retries option/,
        );
      } finally {
        release();
      }
      assert.ok(performance.now() - started < 1_500, "each attempt ends after about timeoutMs");
      assert.equal(requests(), 2);
      assert.equal(log.length, 1);
      assert.deepEqual(await listDir(dir), []);
    });
  });
});

Deno.test("download follows redirects", async () => {
  const handlers = [
    () => new Response(null, { status: 302, headers: { location: "/moved/c.tar.gz" } }),
    (request: Request) =>
      new URL(request.url).pathname === "/moved/c.tar.gz" ? new Response(payload) : new Response("", { status: 404 }),
  ];
  await withServer(handlers, async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      const result = await downloadCifarBinary(`${baseUrl}/c.tar.gz`, `${dir}/c.tar.gz`, fast);
      assert.equal(result.bytes, payload.length);
      assert.equal(requests(), 2);
    });
  });
});

Deno.test("download rejects redirect to http", async () => {
  // The target is checked before it is requested, so example.com is never contacted.
  const handlers = [() => new Response(null, { status: 301, headers: { location: "http://example.com/c.tar.gz" } })];
  await withServer(handlers, async (baseUrl, requests) => {
    await withTempDir(async (dir) => {
      await assert.rejects(
        downloadCifarBinary(`${baseUrl}/c.tar.gz`, `${dir}/c.tar.gz`, fast),
        /redirected to http:\/\/example\.com\/c\.tar\.gz\. Rejected download URL .*only https:\/\//,
      );
      assert.equal(requests(), 1);
    });
  });
});
