// Scenario 2 / matrix cells: closed-loop (constant VUs, no think time) or open-loop
// (constant arrival rate) load on one JSON path through Envoy.
//   PATH=/fitness/wod | /health   TOKEN or TOKENS_FILE   VUS   DURATION   RATE (open loop)
import http from "k6/http";
import { check } from "k6";
import exec from "k6/execution";
import { BASE_URL } from "./common.js";

const tokens = __ENV.TOKENS_FILE ? JSON.parse(open(__ENV.TOKENS_FILE)) : [__ENV.TOKEN || ""];
const path = __ENV.PATH_UNDER_TEST || "/health";
const duration = __ENV.DURATION || "10s";
const vus = parseInt(__ENV.VUS || "20", 10);

export const options = {
  scenarios: __ENV.RATE
    ? {
        open: {
          executor: "constant-arrival-rate",
          rate: parseInt(__ENV.RATE, 10),
          timeUnit: "1s",
          duration,
          preAllocatedVUs: vus,
          maxVUs: vus * 4,
        },
      }
    : { closed: { executor: "constant-vus", vus, duration } },
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
  discardResponseBodies: false,
};

export default function () {
  const token = tokens[exec.scenario.iterationInTest % tokens.length];
  const params = token ? { headers: { Authorization: `Bearer ${token}` } } : {};
  const res = http.get(`${BASE_URL}${path}`, params);
  check(res, { "status 200": (r) => r.status === 200 });
}
