/**
 * The client against the real local stack. The pytest that runs this file
 * (tests/clients/test_typescript_client.py) seeds a collection, serves the API and passes:
 *   DX_API_URL       an API with a worker: exports complete
 *   DX_IDLE_API_URL  an API on a task queue no worker polls: exports stay PENDING
 *   DX_TOKEN         a bearer token of the owner of the seeded rows
 *   DX_COLLECTION    the seeded collection
 *   DX_EXPECTED_FILE the file the export must produce, byte for byte
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { DurableExportClient, ExportApiError, type ExportRequest, type ExportView } from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through tests/clients/test_typescript_client.py`);
  return value;
}

const token = env("DX_TOKEN");
const client = new DurableExportClient({ baseUrl: env("DX_API_URL"), token });
const idle = new DurableExportClient({ baseUrl: env("DX_IDLE_API_URL"), token: () => Promise.resolve(token) });
const request: ExportRequest = {
  collection: env("DX_COLLECTION"),
  pipeline: [{ $match: { n: { $gte: 0 } } }, { $sort: { n: 1 } }],
  columns: [{ path: "n" }, { path: "name", header: "Name" }, { path: "city" }],
  filename: "from-typescript.csv",
};

describe("an export from start to downloaded bytes", () => {
  it("starts, waits with progress, downloads the exact bytes", async () => {
    const key = `ts-${crypto.randomUUID()}`;
    const started = await client.start(request, { idempotencyKey: key });
    assert.match(started.export_id, /^exp_/);
    assert.equal(started.replayed, false);
    assert.ok(started.strategy.length > 0);

    const seen: ExportView[] = [];
    const done = await client.waitForExport(started.export_id, {
      onProgress: (view) => seen.push(view),
      backoff: { initialDelayMs: 100, maxDelayMs: 1000 },
      timeoutMs: 120_000,
    });
    assert.equal(done.status, "COMPLETED", JSON.stringify(done));
    assert.ok(seen.length >= 1);
    assert.equal(seen.at(-1)?.status, "COMPLETED");
    assert.ok(done.download_url);

    const downloaded = new Uint8Array(await (await client.download(started.export_id)).arrayBuffer());
    const expected = new Uint8Array(readFileSync(env("DX_EXPECTED_FILE")));
    assert.equal(downloaded.length, expected.length);
    assert.deepEqual(downloaded, expected);
    assert.equal(done.bytes, expected.length);

    const again = await client.start(request, { idempotencyKey: key });
    assert.equal(again.export_id, started.export_id);
    assert.equal(again.replayed, true);

    const listed = [];
    for await (const item of client.listAll({ limit: 1 })) listed.push(item.export_id);
    assert.ok(listed.includes(started.export_id), JSON.stringify(listed));

    await assert.rejects(client.cancel(started.export_id), (error: unknown) => {
      assert.ok(error instanceof ExportApiError);
      assert.equal(error.status, 409);
      assert.equal(error.code, "already_finished");
      return true;
    });
  });

  it("explains without starting", async () => {
    const explained = await client.explain(request);
    assert.ok(explained.explanation.length > 0);
    assert.ok(explained.pipeline.length >= 2);
  });

  it("turns API errors into ExportApiError with the API's code", async () => {
    await assert.rejects(client.status("exp_does_not_exist"), (error: unknown) => {
      assert.ok(error instanceof ExportApiError);
      assert.equal(error.status, 404);
      assert.equal(error.code, "not_found");
      return true;
    });
    await assert.rejects(client.explain({ ...request, pipeline: [{ $out: "x" }] }), (error: unknown) => {
      assert.ok(error instanceof ExportApiError);
      assert.equal(error.status, 422);
      assert.match(error.message, /pipeline\[0\]/);
      return true;
    });
    const anonymous = new DurableExportClient({ baseUrl: env("DX_API_URL"), token: "not-a-jwt" });
    await assert.rejects(anonymous.list(), (error: unknown) => error instanceof ExportApiError && error.status === 401);
  });
});

describe("an export that does not finish", () => {
  it("cannot be downloaded yet, can be cancelled, and waiting stops on abort or timeout", async () => {
    const started = await idle.start(request);
    assert.equal(started.status, "PENDING");
    assert.equal((await idle.status(started.export_id)).status, "PENDING");

    await assert.rejects(idle.downloadUrl(started.export_id), (error: unknown) => {
      assert.ok(error instanceof ExportApiError);
      assert.equal(error.code, "not_complete");
      return true;
    });

    const controller = new AbortController();
    let polls = 0;
    const waiting = idle.waitForExport(started.export_id, {
      signal: controller.signal,
      backoff: { initialDelayMs: 50, maxDelayMs: 200 },
      onProgress: () => {
        polls += 1;
        if (polls === 3) controller.abort(new Error("the user left the page"));
      },
    });
    await assert.rejects(waiting, /the user left the page/);
    assert.equal(polls, 3);

    await assert.rejects(
      idle.waitForExport(started.export_id, { timeoutMs: 300, backoff: { initialDelayMs: 50 } }),
      (error: unknown) => error instanceof DOMException && error.name === "TimeoutError",
    );

    const cancelled = await idle.cancel(started.export_id);
    assert.equal(cancelled.export_id, started.export_id);
    assert.equal(cancelled.cancel_requested, true);
  });
});
