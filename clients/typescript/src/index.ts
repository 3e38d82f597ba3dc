export {
  DurableExportClient,
  TERMINAL_STATUSES,
  type CallOptions,
  type CancelAccepted,
  type ClientOptions,
  type ExplainResult,
  type ExportAccepted,
  type ExportPage,
  type ExportRequest,
  type ExportStatus,
  type ExportSummary,
  type ExportView,
  type ListOptions,
  type StartOptions,
  type StartResult,
  type TokenSource,
  type WaitOptions,
} from "./client.js";
export { ExportApiError, type ErrorDetail } from "./errors.js";
export { type Backoff, DEFAULT_BACKOFF } from "./wait.js";
export type { components, paths } from "./schema.js";
