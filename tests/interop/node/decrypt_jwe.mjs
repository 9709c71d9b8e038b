// Decrypts a compact JWE with panva/jose (a JOSE library nobody in this project wrote).
// stdin: {"token": "...", "jwk": {private JWK}, "alg": "ECDH-ES+A256KW"}; stdout: the plaintext.
import * as jose from "jose";

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const { token, jwk, alg } = JSON.parse(input);
  const key = await jose.importJWK(jwk, alg);
  const { plaintext, protectedHeader } = await jose.compactDecrypt(token, key);
  process.stdout.write(JSON.stringify({ header: protectedHeader,
                                        plaintext: new TextDecoder().decode(plaintext) }));
});
