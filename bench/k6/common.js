// Shared helpers for the k6 scenarios. Every run targets loopback only (BASE_URL) and is
// bounded in time by its own options.
import http from "k6/http";

export const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8080";

// Tokens prepared by the bench orchestrator (./fit bench): one per simulated user.
export function loadTokens() {
  const raw = open(__ENV.TOKENS_FILE || "tokens.json");
  return JSON.parse(raw);
}

export function authHeaders(token) {
  return { headers: { Authorization: `Bearer ${token}` }, tags: { name: "wod" } };
}

export function thinkSeconds() {
  return 1 + Math.random() * 2; // 1-3 s, as the old teams' scripts
}

export function getWod(token) {
  return http.get(`${BASE_URL}/fitness/wod`, authHeaders(token));
}
