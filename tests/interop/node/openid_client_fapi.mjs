// A FAPI 2.0 relying party nobody in this project wrote: node openid-client (certified FAPI 2.0 RP).
// usage: node openid_client_fapi.mjs <issuer> <client_id> <kid> <private-key.pem> <redirect_uri>
// Protocol on stdio (one JSON object per line):
//   -> {"authorize": "<url>"}          the browser must go there and log in
//   <- {"callback": "<redirect url>"}  where the provider sent the browser back
//   -> {"ok": true, ...} or {"ok": false, "error": ...}
// It uses PAR, PKCE (S256), DPoP (with the provider's nonces), private_key_jwt, then reads userinfo,
// refreshes (rotation), reads userinfo with the new token, and introspects nothing else.
import fs from "node:fs";
import readline from "node:readline";
import * as client from "openid-client";
import * as jose from "jose";

const [issuer, clientId, kid, keyFile, redirectUri] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));

try {
  const privateKey = await jose.importPKCS8(fs.readFileSync(keyFile, "utf8"), "ES256");
  const config = await client.discovery(
    new URL(issuer), clientId, { token_endpoint_auth_method: "private_key_jwt",
                                 id_token_signed_response_alg: "ES256" },
    client.PrivateKeyJwt({ key: privateKey, kid }),
    { execute: [client.allowInsecureRequests] },
  );
  const dpopKeys = await client.randomDPoPKeyPair("ES256");
  const DPoP = client.getDPoPHandle(config, dpopKeys);
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri, scope: "openid profile national_id offline_access",
    code_challenge: codeChallenge, code_challenge_method: "S256", state, nonce,
    acr_values: "LoA2",
  }, { DPoP });
  out({ authorize: url.href });
  const { callback } = JSON.parse(await nextLine());
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce,
    idTokenExpected: true,
  }, undefined, { DPoP });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  const userinfo2 = await client.fetchUserInfo(config, refreshed.access_token, claims.sub, { DPoP });
  out({
    ok: true, token_type: tokens.token_type, claims, userinfo, userinfo_after_refresh: userinfo2,
    refresh_rotated: refreshed.refresh_token !== tokens.refresh_token,
    refreshed_token_type: refreshed.token_type,
  });
} catch (err) {
  out({ ok: false, error: String(err && err.message || err), code: err && err.code,
        cause: err && err.cause && JSON.stringify(err.cause) });
}
lines.close();
