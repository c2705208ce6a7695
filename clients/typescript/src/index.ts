// Attain's TypeScript client: the generated attain.v1 messages and services, and a helper that
// connects to a server over gRPC with an API key.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ProgressService } from "./gen/attain/v1/progress_pb.js";
import { RewardService } from "./gen/attain/v1/rewards_pb.js";
import { TargetService } from "./gen/attain/v1/targets_pb.js";

export * from "./gen/attain/v1/types_pb.js";
export * from "./gen/attain/v1/targets_pb.js";
export * from "./gen/attain/v1/progress_pb.js";
export * from "./gen/attain/v1/rewards_pb.js";
export { errorReason, fieldViolations } from "./errors.js";

/** The three attain.v1 services, each a typed client over one shared gRPC connection. */
export interface AttainClient {
  targets: Client<typeof TargetService>;
  progress: Client<typeof ProgressService>;
  rewards: Client<typeof RewardService>;
}

/** Sends `authorization: Bearer <key>` with every call. */
export function bearer(key: string): Interceptor {
  return (next) => async (request) => {
    request.header.set("authorization", `Bearer ${key}`);
    return await next(request);
  };
}

/**
 * Connects to an Attain server over gRPC (HTTP/2).
 *
 * @param address `http://host:port` for plaintext, `https://host:port` for TLS;
 *   a bare `host:port` means plaintext.
 * @param key an API key (`atn_...`) sent as a bearer token with every call.
 */
export function createAttainClient(address: string, key: string): AttainClient {
  const baseUrl = /^https?:\/\//.test(address) ? address : `http://${address}`;
  const transport = createGrpcTransport({ baseUrl, interceptors: [bearer(key)] });
  return {
    targets: createClient(TargetService, transport),
    progress: createClient(ProgressService, transport),
    rewards: createClient(RewardService, transport),
  };
}
