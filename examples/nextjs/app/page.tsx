import { currentSession } from "@/lib/session";

import { ExportButton } from "./export-button";

export default async function Page() {
  const session = await currentSession();
  if (!session) return <p>Sign in to export your reports.</p>;
  return (
    <main>
      <h1>Reports of {session.tenant}</h1>
      <ExportButton report="failed-inspections" label="Export failed inspections (CSV)" />
    </main>
  );
}
