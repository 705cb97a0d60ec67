// Scenario 1, the seed's capacity estimate: ramping VUs with 1-3 s think time, each VU a
// logged-in user calling GET /fitness/wod. The orchestrator reads the per-request JSON output
// and reports p95 per concurrency level. STAGES (JSON) overrides the default 10 -> 200 ramp.
import { check, sleep } from "k6";
import exec from "k6/execution";
import http from "k6/http";
import { BASE_URL, loadTokens, thinkSeconds } from "./common.js";

const tokens = loadTokens();
const defaultStages = [
  { duration: "20s", target: 10 },
  { duration: "20s", target: 50 },
  { duration: "20s", target: 100 },
  { duration: "20s", target: 150 },
  { duration: "20s", target: 200 },
  { duration: "20s", target: 200 },
  { duration: "10s", target: 0 },
];

export const options = {
  scenarios: {
    capacity: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: __ENV.STAGES ? JSON.parse(__ENV.STAGES) : defaultStages,
      gracefulRampDown: "5s",
    },
  },
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
};

export default function () {
  const token = tokens[(exec.vu.idInTest - 1) % tokens.length];
  // Tag each request with the concurrency level it ran at (active VUs, rounded up to 10).
  const level = String(Math.ceil(exec.instance.vusActive / 10) * 10);
  const res = http.get(`${BASE_URL}/fitness/wod`, {
    headers: { Authorization: `Bearer ${token}` },
    tags: { name: "wod", level },
  });
  check(res, { "200 with exercises": (r) => r.status === 200 && r.json("exercises").length > 0 });
  sleep(thinkSeconds());
}
