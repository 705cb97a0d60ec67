// Login flood (issue #8): MODE=flood sends wrong-password logins from VUS clients with no
// think time (the attacker: one address); MODE=probe is an unrelated user's open-loop reads
// at RATE/s (a catalog read and a profile read, from another address: --local-ips), whose
// latency is what the flood must not spoil. Bounded by DURATION; loopback only.
import http from "k6/http";
import { check } from "k6";
import { BASE_URL } from "./common.js";

const mode = __ENV.MODE || "probe";
const duration = __ENV.DURATION || "15s";
const vus = parseInt(__ENV.VUS || "50", 10);
const token = __ENV.TOKEN || "";

export const options = {
  scenarios:
    mode === "flood"
      ? { flood: { executor: "constant-vus", vus, duration } }
      : {
          probe: {
            executor: "constant-arrival-rate",
            rate: parseInt(__ENV.RATE || "20", 10),
            timeUnit: "1s",
            duration,
            preAllocatedVUs: 20,
            maxVUs: 100,
          },
        },
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
};

// EMAILS=few: five victims (the per-account back-off locks them); EMAILS=distinct: a new email
// every try (credential stuffing: only the hash pool bounds the work).
function floodEmail() {
  return __ENV.EMAILS === "distinct"
    ? `stuffed-${__VU}-${__ITER}@example.com`
    : `victim${__VU % 5}@example.com`;
}

export default function () {
  if (mode === "flood") {
    const res = http.post(
      `${BASE_URL}/v1/auth/login`,
      JSON.stringify({ email: floodEmail(), password: "not the password" }),
      { headers: { "Content-Type": "application/json" }, tags: { name: "flood" } },
    );
    check(res, {
      "refused (401 or 429)": (r) => r.status === 401 || r.status === 429,
      "rate limited (429)": (r) => r.status === 429,
    });
    return;
  }
  const catalog = http.get(`${BASE_URL}/fitness/exercises/1`, { tags: { name: "catalog" } });
  check(catalog, { "catalog 200": (r) => r.status === 200 });
  const profile = http.get(`${BASE_URL}/v1/profile`, {
    headers: { Authorization: `Bearer ${token}` },
    tags: { name: "profile" },
  });
  check(profile, { "profile 200": (r) => r.status === 200 });
}
