// What a frontend does with the generated types: sign up, connect Karbon, follow the sync,
// read a report, and handle each error as the typed problem the API documents.
// CI type-checks this file against a client generated from the current API (`.ci/clients`).
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api";

type Problem = components["schemas"]["Problem"];
type ValidationProblem = components["schemas"]["ValidationProblem"];
type ProfitabilityRow = components["schemas"]["ProfitabilityRow"];

const api = createClient<paths>({ baseUrl: "http://localhost:8000" });

function isValidationProblem(problem: Problem | ValidationProblem): problem is ValidationProblem {
  return problem.status === 422 && "errors" in problem;
}

function explain(problem: Problem | ValidationProblem): string {
  if (isValidationProblem(problem)) {
    return problem.errors.map(({ field, message }) => `${field}: ${message}`).join("\n");
  }
  return `${problem.title}: ${problem.detail}`;
}

export async function signUp(firmName: string, email: string, password: string): Promise<string> {
  const { data, error } = await api.POST("/api/v1/signup", {
    body: { firm_name: firmName, email, password },
  });
  if (error) throw new Error(explain(error));
  return data.access_token;
}

export async function connectKarbon(token: string, accessKey: string, bearerToken: string) {
  const { data, error } = await api.PUT("/api/v1/karbon/credentials", {
    headers: { Authorization: `Bearer ${token}` },
    body: { access_key: accessKey, bearer_token: bearerToken },
  });
  if (error) throw new Error(explain(error));
  return data.connected;
}

export async function syncProgress(token: string): Promise<string> {
  const { data, error } = await api.GET("/api/v1/sync", {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (error) throw new Error(explain(error));
  const run = data.current ?? data.last;
  return run ? `${run.state}: ${run.requests_made} requests, ETA ${run.eta_seconds ?? "?"} s` : "never synced";
}

export async function leastProfitableClients(token: string): Promise<ProfitabilityRow[]> {
  const { data, error, response } = await api.GET("/api/v1/reports/client-profitability", {
    headers: { Authorization: `Bearer ${token}` },
    params: { query: { sort: "margin", order: "asc", group_by: "client", limit: 10 } },
  });
  if (error) {
    if (response.status === 402) throw new Error(`Subscribe to see reports: ${error.detail}`);
    throw new Error(explain(error));
  }
  if (typeof data === "string") throw new Error("asked for JSON, got CSV");
  return data.items;
}

export async function profitabilityCsv(token: string): Promise<string> {
  const { data, error } = await api.GET("/api/v1/reports/client-profitability", {
    headers: { Authorization: `Bearer ${token}` },
    params: { query: { format: "csv", interval: "month" } },
    parseAs: "text",
  });
  if (error) throw new Error(explain(error));
  return data;
}

// A report during the first sync (or while records wait for their detail) is partial: say so,
// and name the clients on this page whose figures may still move.
export async function profitabilityCompleteness(token: string): Promise<string> {
  const { data, error } = await api.GET("/api/v1/reports/client-profitability", {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (error) throw new Error(explain(error));
  if (typeof data === "string") throw new Error("asked for JSON, got CSV");
  if (data.complete) return `Complete as of ${data.as_of}`;
  const entities = data.progress
    .map(({ entity, state, details_owed }) => `${entity} ${state}${details_owed ? `, ${details_owed} details owed` : ""}`)
    .join("; ");
  const moving = data.all_clients_may_move
    ? "every client's figures"
    : data.items.filter((row) => row.may_move).map((row) => row.name ?? row.key).join(", ");
  return `Still arriving (${entities}), figures of ${data.refreshed_at}: ${moving} may still move`;
}
