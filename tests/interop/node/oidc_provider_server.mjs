// node oidc-provider configured as a FAPI 2.0 provider comparable to ours, for the login-flow
// benchmark: PAR required, private_key_jwt, PKCE S256, DPoP-bound tokens with server nonces,
// ES256 ID tokens, the national-portal claims. Development interactions (any login) create the
// session once; the benchmark then measures flows that reuse it.
// usage: node oidc_provider_server.mjs <port> <client_id> <client-public-jwk.json> <redirect_uri>
// Prints {"ready": true, "issuer": ...} once listening.
import crypto from "node:crypto";
import fs from "node:fs";
import * as jose from "jose";
import Provider from "oidc-provider";

const [port, clientId, jwkFile, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
const signing = { ...(await jose.exportJWK(privateKey)), kid: "op-es256", alg: "ES256", use: "sig" };

const claims = {
  sub: undefined, SoDinhDanh: "079084000123", HoVaTen: "Nguyễn Văn An",
  NgayThangNamSinh: "19840517", LoaiTaiKhoan: "1",
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    token_endpoint_auth_method: "private_key_jwt",
    token_endpoint_auth_signing_alg: "ES256",
    jwks: { keys: [JSON.parse(fs.readFileSync(jwkFile, "utf8"))] },
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    id_token_signed_response_alg: "ES256",
    dpop_bound_access_tokens: true,
    require_pushed_authorization_requests: true,
  }],
  jwks: { keys: [signing] },
  cookies: { keys: [crypto.randomBytes(32).toString("hex")] },
  scopes: ["openid", "national_id", "offline_access"],
  claims: { openid: ["sub"], national_id: ["SoDinhDanh", "HoVaTen", "NgayThangNamSinh", "LoaiTaiKhoan"] },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ ...claims, sub: id }) }),
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32) },
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: true },
    fapi: { enabled: true, profile: "2.0" },
    userinfo: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
});
provider.on("server_error", (ctx, err) => process.stderr.write(`server_error ${err}\n`));
provider.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ ready: true, issuer }) + "\n");
});
