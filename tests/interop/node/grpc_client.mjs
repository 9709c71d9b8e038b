// A gRPC client nobody in this project wrote (@grpc/grpc-js), calling the server over mutual TLS.
// usage: node grpc_client.mjs <host:port> <root.pem> <client-chain.pem> <client-key.pem> <proto dir>
// Prints one JSON object: the health status and the GetCaller answer (or the error).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const [target, rootFile, chainFile, keyFile, protoDir] = process.argv.slice(2);

const definition = protoLoader.loadSync(
  ["grpc/health/v1/health.proto", "vnegov/admin/v1/admin.proto"],
  { includeDirs: [path.join(here, "protos"), protoDir], keepCase: true, defaults: true,
    enums: String, longs: String },
);
const loaded = grpc.loadPackageDefinition(definition);
const credentials = grpc.credentials.createSsl(
  fs.readFileSync(rootFile),
  keyFile === "-" ? null : fs.readFileSync(keyFile),
  chainFile === "-" ? null : fs.readFileSync(chainFile),
);
const options = { "grpc.ssl_target_name_override": "localhost" };
const health = new loaded.grpc.health.v1.Health(target, credentials, options);
const admin = new loaded.vnegov.admin.v1.AdminService(target, credentials, options);

const call = (client, method, request) => new Promise((resolve) => {
  client[method](request, { deadline: Date.now() + 10000 }, (err, response) => {
    if (err) resolve({ error: { code: grpc.status[err.code], details: err.details } });
    else resolve(response);
  });
});

const out = {
  health: await call(health, "Check", { service: "" }),
  caller: await call(admin, "GetCaller", {}),
};
console.log(JSON.stringify(out));
health.close();
admin.close();
