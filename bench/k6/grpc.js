// Scenario 4, k6 gRPC: the same GetWod RPC through Envoy as native gRPC.
import grpc from "k6/net/grpc";
import { check } from "k6";
import exec from "k6/execution";

const client = new grpc.Client();
client.load(["../../proto", "../../third_party"], "fitco/coach/v1/coach.proto");
const tokens = JSON.parse(open(__ENV.TOKENS_FILE || "tokens.json"));
const target = __ENV.GRPC_TARGET || "127.0.0.1:8080";

export const options = {
  scenarios: { closed: { executor: "constant-vus", vus: parseInt(__ENV.VUS || "20", 10), duration: __ENV.DURATION || "10s" } },
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
};

export default function () {
  if (exec.vu.iterationInScenario === 0) {
    client.connect(target, { plaintext: true });
  }
  const token = tokens[exec.scenario.iterationInTest % tokens.length];
  const res = client.invoke("fitco.coach.v1.CoachService/GetWod", {}, { metadata: { authorization: `Bearer ${token}` } });
  check(res, { "OK": (r) => r && r.status === grpc.StatusOK });
}
