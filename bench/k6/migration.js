// Scenario 3, the migration under load: a steady arrival rate of WOD requests from many users
// while the orchestrator shifts the split 0 -> 10 -> 50 -> 100 % (./fit shift). Counts failed
// requests and which implementation generated each answer.
import http from "k6/http";
import { check } from "k6";
import { Counter } from "k6/metrics";
import exec from "k6/execution";
import { BASE_URL, loadTokens } from "./common.js";

const tokens = loadTokens();
const failed = new Counter("wod_failed");

export const options = {
  scenarios: {
    migration: {
      executor: "constant-arrival-rate",
      rate: parseInt(__ENV.RATE || "200", 10),
      timeUnit: "1s",
      duration: __ENV.DURATION || "40s",
      preAllocatedVUs: 50,
      maxVUs: 200,
    },
  },
  summaryTrendStats: ["avg", "med", "p(95)", "p(99)", "max"],
};

export default function () {
  const token = tokens[exec.scenario.iterationInTest % tokens.length];
  const res = http.get(`${BASE_URL}/fitness/wod`, { headers: { Authorization: `Bearer ${token}` } });
  const ok = check(res, { "200 with exercises": (r) => r.status === 200 && r.json("exercises").length > 0 });
  if (!ok) failed.add(1);
}
