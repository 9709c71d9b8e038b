// Offline verification of a receipt QR (format BL1, docs/payments.md "Receipt QR codes"):
// a compact JWS by the collecting body's seal. Everything happens in this page with WebCrypto:
// the seal certificate is found by its SHA-256 thumbprint among the certificates embedded in the
// page (untrusted), its path is checked up to an embedded trusted root at the receipt's issue
// time, and it must name the collecting body the QR names. Nothing is sent anywhere.
(function () {
  "use strict";
  var SUBJECT_INFO_OID = "1.3.6.1.4.1.32473.704.1.1";
  var UID_OID = "0.9.2342.19200300.100.1.1";
  var ALGS = {
    ES256: { key: { name: "ECDSA", namedCurve: "P-256" }, sig: { name: "ECDSA", hash: "SHA-256" }, size: 64 },
    ES384: { key: { name: "ECDSA", namedCurve: "P-384" }, sig: { name: "ECDSA", hash: "SHA-384" }, size: 96 },
    PS256: { key: { name: "RSA-PSS", hash: "SHA-256" }, sig: { name: "RSA-PSS", saltLength: 32 }, size: 0 }
  };
  var FIELDS = ["b", "d", "h", "k", "m", "n", "p", "s", "t"];

  function fail(detail) { var e = new Error(detail); e.detail = detail; throw e; }

  function b64urlToBytes(text) {
    if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) { fail("MALFORMED"); }
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }

  function bytesToB64url(bytes) {
    var bin = "";
    bytes = new Uint8Array(bytes);
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function hex(bytes) {
    return Array.prototype.map.call(new Uint8Array(bytes), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function json(bytes) {
    try { return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)); }
    catch (e) { fail("MALFORMED"); }
  }

  function sameKeys(obj, keys) {
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) { return false; }
    var got = Object.keys(obj).sort();
    return got.length === keys.length && got.every(function (k, i) { return k === keys[i]; });
  }

  function equalBytes(a, b) {
    a = new Uint8Array(a); b = new Uint8Array(b);
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }

  // The agency code of the VnegovSubjectInfo extension: SEQUENCE { [0] IMPLICIT UTF8String, ... }.
  function agencyCode(cert) {
    var ext = cert.getExtension(SUBJECT_INFO_OID);
    if (!ext) { return null; }
    var der = new Uint8Array(ext.value);
    if (der[0] !== 0x30) { return null; }
    var pos = 1, len = der[pos++];
    if (len & 0x80) { var n = len & 0x7f; len = 0; while (n--) { len = (len << 8) | der[pos++]; } }
    var end = pos + len;
    while (pos < end) {
      var tag = der[pos++], l = der[pos++];
      if (l & 0x80) { var m = l & 0x7f; l = 0; while (m--) { l = (l << 8) | der[pos++]; } }
      if (tag === 0x80) { return new TextDecoder("utf-8", { fatal: true }).decode(der.slice(pos, pos + l)); }
      pos += l;
    }
    return null;
  }

  function statedTaxCode(cert) {
    var values = cert.subjectName.getField(UID_OID) || [];
    for (var i = 0; i < values.length; i++) {
      var found = /^MST:\s*([0-9-]{10,14})$/.exec(String(values[i]).trim());
      if (found) { return found[1]; }
    }
    return null;
  }

  function parseClaims(payload) {
    if (!sameKeys(payload, FIELDS)) { fail("MALFORMED"); }
    ["k", "s", "n", "d", "b", "m", "p", "h"].forEach(function (k) {
      if (typeof payload[k] !== "string") { fail("MALFORMED"); }
    });
    if (typeof payload.t !== "number" || !Number.isInteger(payload.t)) { fail("MALFORMED"); }
    if (!/^[0-9]{7}$/.test(payload.n)) { fail("MALFORMED"); }
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/.test(payload.d)) { fail("MALFORMED"); }
    var digest = b64urlToBytes(payload.h);
    if (digest.length !== 32) { fail("MALFORMED"); }
    return { template: payload.k, series: payload.s, number: payload.n, issued: payload.d,
             issuedAt: new Date(payload.d + "+07:00"), agency: payload.b, taxCode: payload.m,
             payer: payload.p, total: payload.t, xmlSha256: hex(digest) };
  }

  async function thumbprint(cert) {
    return bytesToB64url(await crypto.subtle.digest("SHA-256", cert.rawData));
  }

  // The path from the seal to an embedded root, each signature and validity period checked at
  // the receipt's issue time, issuers must be CAs, the seal's key usage must allow signatures.
  async function pathToRoot(seal, roots, pool, at) {
    var chain = [seal], current = seal;
    for (var depth = 0; depth < 6; depth++) {
      var isRoot = roots.some(function (r) { return equalBytes(r.rawData, current.rawData); });
      if (isRoot) {
        if (at < current.notBefore || at > current.notAfter) { fail("SEAL_NOT_TRUSTED"); }
        return chain;
      }
      var candidates = roots.concat(pool).filter(function (c) {
        return c.subject === current.issuer && !equalBytes(c.rawData, current.rawData);
      });
      var next = null;
      for (var i = 0; i < candidates.length && !next; i++) {
        var bc = candidates[i].getExtension("2.5.29.19");
        if (!bc || !bc.ca) { continue; }
        // the signature of `current` by the candidate, and `current` valid at `at`
        if (await current.verify({ publicKey: candidates[i].publicKey, date: at })) { next = candidates[i]; }
      }
      if (!next) { fail("SEAL_NOT_TRUSTED"); }
      chain.push(next);
      current = next;
    }
    fail("SEAL_NOT_TRUSTED");
  }

  async function verifyText(text, trust) {
    text = String(text || "").trim();
    var token = text.slice(text.lastIndexOf("#") + 1);
    var parts = token.split(".");
    if (token.length > 2048 || parts.length !== 3) { fail("NOT_A_RECEIPT_QR"); }
    var header = json(b64urlToBytes(parts[0]));
    var claims = parseClaims(json(b64urlToBytes(parts[1])));
    var signature = b64urlToBytes(parts[2]);
    if (!sameKeys(header, ["alg", "typ", "x5t#S256"]) || header.typ !== "BL1" ||
        !Object.prototype.hasOwnProperty.call(ALGS, header.alg)) { fail("UNSUPPORTED_HEADER"); }
    var alg = ALGS[header.alg];
    var seal = null;
    for (var i = 0; i < trust.certificates.length && !seal; i++) {
      if ((await thumbprint(trust.certificates[i])) === header["x5t#S256"]) { seal = trust.certificates[i]; }
    }
    if (!seal) { fail("SEAL_UNKNOWN"); }
    if (alg.size && signature.length !== alg.size) { fail("ALGORITHM_MISMATCH"); }
    var key;
    try { key = await crypto.subtle.importKey("spki", seal.publicKey.rawData, alg.key, false, ["verify"]); }
    catch (e) { fail("ALGORITHM_MISMATCH"); }
    var data = new TextEncoder().encode(parts[0] + "." + parts[1]);
    if (!(await crypto.subtle.verify(alg.sig, key, signature, data))) { fail("BAD_SIGNATURE"); }
    if (agencyCode(seal) !== claims.agency) { fail("SEAL_OF_ANOTHER_BODY"); }
    var tax = statedTaxCode(seal);
    if (tax !== null && tax !== claims.taxCode) { fail("SEAL_OF_ANOTHER_BODY"); }
    var ku = seal.getExtension("2.5.29.15");
    if (ku && !(ku.usages & 1)) { fail("SEAL_NOT_TRUSTED"); }
    var chain = await pathToRoot(seal, trust.roots, trust.certificates, claims.issuedAt);
    return { claims: claims, algorithm: header.alg, seal: seal, chain: chain };
  }

  function loadTrust() {
    var data = JSON.parse(document.getElementById("trust").textContent);
    function load(list) { return list.map(function (b64) { return new x509.X509Certificate(b64); }); }
    return { roots: load(data.roots), certificates: load(data.certificates) };
  }

  // ---------------------------------------------------------------- QR from a picture
  // jsQR needs about 4 pixels per module: try the picture as it is, then enlarged (a photo
  // where the QR is small), then reduced (a large photo with heavy noise).
  function decodeImage(img) {
    var longest = Math.max(img.naturalWidth, img.naturalHeight);
    var targets = [Math.min(longest, 3200), 2600, 3200, 1600, 1000].filter(function (t, i, all) {
      return all.indexOf(t) === i;
    });
    for (var s = 0; s < targets.length; s++) {
      var scale = targets[s] / longest;
      var w = Math.max(1, Math.round(img.naturalWidth * scale));
      var h = Math.max(1, Math.round(img.naturalHeight * scale));
      var canvas = document.createElement("canvas");
      canvas.width = w; canvas.height = h;
      var ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(img, 0, 0, w, h);
      var pixels = ctx.getImageData(0, 0, w, h);
      var code = jsQR(pixels.data, w, h, { inversionAttempts: "attemptBoth" });
      if (code && code.data) { return code.data; }
    }
    return null;
  }

  function readFile(file) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () { URL.revokeObjectURL(url); resolve(decodeImage(img)); };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("NOT_AN_IMAGE")); };
      img.src = url;
    });
  }

  // ---------------------------------------------------------------- showing the outcome
  function money(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ".") + " đồng"; }

  function show(outcome) {
    var box = document.getElementById("result");
    box.textContent = "";
    box.setAttribute("data-status", outcome.status);
    var title = document.createElement("h2");
    box.appendChild(title);
    if (outcome.status !== "valid") {
      title.textContent = "KHÔNG HỢP LỆ — chữ ký không kiểm tra được (invalid)";
      var why = document.createElement("p");
      why.id = "detail";
      why.textContent = outcome.detail;
      box.appendChild(why);
      return;
    }
    var v = outcome.result, c = v.claims;
    title.textContent = "HỢP LỆ — biên lai do đơn vị thu ký (valid)";
    var rows = [
      ["Mẫu số – Ký hiệu – Số", c.template + " – " + c.series + " – " + c.number, "label"],
      ["Ngày lập (GMT+7)", c.issued.replace("T", " "), "issued"],
      ["Đơn vị thu (mã)", c.agency, "agency"],
      ["Mã số thuế đơn vị thu", c.taxCode, "tax"],
      ["Người nộp (MST/số định danh)", c.payer || "-", "payer"],
      ["Tổng số tiền", money(c.total), "total"],
      ["SHA-256 của biên lai XML", c.xmlSha256, "sha256"],
      ["Ký bởi", v.seal.subject, "seal"],
      ["Thuật toán", v.algorithm, "alg"],
      ["Chuỗi chứng thư", v.chain.map(function (x) { return x.subject; }).join(" ← "), "chain"]
    ];
    var table = document.createElement("table");
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      var th = document.createElement("th"); th.textContent = r[0];
      var td = document.createElement("td"); td.textContent = r[1]; td.id = "f-" + r[2];
      tr.appendChild(th); tr.appendChild(td); table.appendChild(tr);
    });
    box.appendChild(table);
    var note = document.createElement("p");
    note.textContent = "Đối chiếu các thông tin trên với biên lai giấy. Trạng thái hủy/thay thế " +
      "chỉ tra cứu được trực tuyến.";
    box.appendChild(note);
  }

  async function run(text) {
    var trust;
    try { trust = loadTrust(); } catch (e) { show({ status: "invalid", detail: "NO_TRUST_DATA" }); return; }
    try { show({ status: "valid", result: await verifyText(text, trust) }); }
    catch (e) { show({ status: "invalid", detail: e.detail || "MALFORMED" }); }
  }

  window.vnReceiptQr = { verifyText: verifyText, loadTrust: loadTrust, run: run, decodeImage: decodeImage };

  document.addEventListener("DOMContentLoaded", function () {
    var input = document.getElementById("photo");
    input.addEventListener("change", async function () {
      if (!input.files || !input.files[0]) { return; }
      var text = null;
      try { text = await readFile(input.files[0]); } catch (e) { text = null; }
      if (!text) { show({ status: "invalid", detail: "NO_QR_FOUND" }); return; }
      document.getElementById("text").value = text;
      await run(text);
    });
    document.getElementById("check").addEventListener("click", function () {
      run(document.getElementById("text").value);
    });
    function fromFragment() {
      if (location.hash.length > 1) {
        document.getElementById("text").value = location.hash.slice(1);
        run(location.hash.slice(1));
      }
    }
    window.addEventListener("hashchange", fromFragment);
    fromFragment();
  });
})();
