"""HTTPS probe run by `Lab.https_get` / `Lab.served_sans` inside the lab network (so names
resolve through the lab's hosts file). Reads a JSON request on stdin, prints a JSON result.

Request keys: url (absolute, or a path when kubeconfig is given), verify (bool), ca, cert,
key (PEM strings), kubeconfig (path), server_name (SNI override), timeout.
"""
import base64
import http.client
import json
import os
import socket
import ssl
import sys
import tempfile
import urllib.parse

import yaml
from cryptography import x509


def sans_of(der: bytes) -> list[str]:
    cert = x509.load_der_x509_certificate(der)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)]
            + [f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress)])


def from_kubeconfig(path: str) -> tuple[str, str | None, str | None, str | None]:
    with open(path) as f:
        kc = yaml.safe_load(f)
    cluster = kc["clusters"][0]["cluster"]
    user = (kc.get("users") or [{}])[0].get("user", {})

    def data(obj, key):
        if obj.get(f"{key}-data"):
            return base64.b64decode(obj[f"{key}-data"]).decode()
        if obj.get(key):
            with open(obj[key]) as fh:
                return fh.read()
        return None

    return (cluster["server"], data(cluster, "certificate-authority"),
            data(user, "client-certificate"), data(user, "client-key"))


def main() -> dict:
    req = json.load(sys.stdin)
    url, ca, cert, key = req["url"], req.get("ca"), req.get("cert"), req.get("key")
    if req.get("kubeconfig"):
        server, kca, kcert, kkey = from_kubeconfig(req["kubeconfig"])
        ca, cert, key = ca or kca, cert or kcert, key or kkey
        if url.startswith("/"):
            url = server.rstrip("/") + url
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or 443
    timeout = float(req.get("timeout") or 10)
    result = {"ok": False, "status": None, "body": None, "error": None, "peer_sans": None}
    if req.get("verify", True):
        ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    tmp = None
    try:
        if cert and key:
            tmp = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)
            tmp.write(cert.rstrip() + "\n" + key.rstrip() + "\n")
            tmp.close()
            ctx.load_cert_chain(tmp.name)
        if not req.get("verify", True):
            with socket.create_connection((host, port), timeout=timeout) as raw:
                with ctx.wrap_socket(raw, server_hostname=req.get("server_name") or host) as s:
                    result["peer_sans"] = sans_of(s.getpeercert(binary_form=True))
                    result["ok"] = True
            return result
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        conn.request("GET", path)
        result["peer_sans"] = sans_of(conn.sock.getpeercert(binary_form=True))
        resp = conn.getresponse()
        result["status"] = resp.status
        result["body"] = resp.read().decode(errors="replace")
        result["ok"] = 200 <= resp.status < 300
        conn.close()
    except (OSError, ssl.SSLError, http.client.HTTPException) as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        if tmp:
            os.unlink(tmp.name)
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
