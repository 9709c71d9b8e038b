// VerifyReceipt from a gRPC client nobody in this project wrote (@grpc/grpc-js), over mutual TLS,
// with the .proto files as published (proto-loader reads them; no generated code).
// usage: node verify_receipt.mjs <host:port> <root.pem> <client-chain.pem> <client-key.pem>
//                                <proto dir> <receipt.xml>...
// Prints one JSON array: each receipt's answer (or the error).
import fs from "node:fs";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const [target, rootFile, chainFile, keyFile, protoDir, ...files] = process.argv.slice(2);
const definition = protoLoader.loadSync(["vnegov/payments/v1/payments.proto"], {
  includeDirs: [protoDir], keepCase: true, defaults: true, enums: String, longs: String,
});
const loaded = grpc.loadPackageDefinition(definition);
const credentials = grpc.credentials.createSsl(
  fs.readFileSync(rootFile), fs.readFileSync(keyFile), fs.readFileSync(chainFile));
const payments = new loaded.vnegov.payments.v1.PaymentsService(
  target, credentials, { "grpc.ssl_target_name_override": "localhost" });

const verify = (xml) => new Promise((resolve) => {
  payments.VerifyReceipt({ xml }, { deadline: Date.now() + 10000 }, (err, response) => {
    if (err) resolve({ error: { code: grpc.status[err.code], details: err.details } });
    else resolve(response);
  });
});

const out = [];
for (const file of files) out.push(await verify(fs.readFileSync(file)));
console.log(JSON.stringify(out));
payments.close();
