"use client";

/**
 * A button that starts an export, a progress bar while it runs, and the download link at the
 * end. It talks to this app's route handlers only; the export API's token stays on the server.
 */

import { DurableExportClient, type ExportView } from "@durable-export/client";
import { useEffect, useRef, useState } from "react";

const proxy = new DurableExportClient({ baseUrl: "/api/durable" });

type Phase =
  | { kind: "idle" }
  | { kind: "running"; view: ExportView | null }
  | { kind: "done"; view: ExportView }
  | { kind: "error"; message: string };

export function ExportButton({ report, label }: { report: string; label: string }) {
  const [phase, setPhase] = useState<Phase>({ kind: "idle" });
  const polling = useRef<AbortController | null>(null);
  useEffect(() => () => polling.current?.abort(), []); // stop polling when the page is left

  async function start(): Promise<void> {
    polling.current?.abort();
    const controller = new AbortController();
    polling.current = controller;
    setPhase({ kind: "running", view: null });
    try {
      const answer = await fetch("/api/durable/exports", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
        body: JSON.stringify({ report }),
        signal: controller.signal,
      });
      const started = (await answer.json()) as { export_id?: string; error?: { message: string } };
      if (!answer.ok || !started.export_id) throw new Error(started.error?.message ?? answer.statusText);
      const view = await proxy.waitForExport(started.export_id, {
        signal: controller.signal,
        onProgress: (progress) => setPhase({ kind: "running", view: progress }),
      });
      setPhase(
        view.status === "COMPLETED"
          ? { kind: "done", view }
          : { kind: "error", message: view.error ?? `the export ended ${view.status}` },
      );
    } catch (error) {
      if (!controller.signal.aborted) setPhase({ kind: "error", message: String(error) });
    }
  }

  const running = phase.kind === "running";
  const rows = phase.kind === "running" || phase.kind === "done" ? (phase.view?.rows ?? 0) : 0;
  return (
    <section>
      <button type="button" onClick={start} disabled={running}>
        {running ? "Exporting…" : label}
      </button>
      {running && (
        // The API cannot know the row count in advance: the bar is indeterminate while it runs.
        <p>
          <progress aria-label="export progress" /> {rows.toLocaleString()} rows written
        </p>
      )}
      {phase.kind === "done" && (
        <p>
          <progress value={1} max={1} /> {rows.toLocaleString()} rows.{" "}
          {phase.view.download_url && (
            <a href={phase.view.download_url} download>
              Download the file
            </a>
          )}
        </p>
      )}
      {phase.kind === "error" && <p role="alert">Export failed: {phase.message}</p>}
    </section>
  );
}
