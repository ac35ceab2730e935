"""A lab chart mirror: our test charts (tests/lab/charts, written by us and saying so)
packaged as Helm packages them and listed in a Helm repository index, served over HTTPS from
the lab's workstation under a name of its own, with a CA of its own.

    mirror = ChartMirror(lab, tmp_path)                 # charts.rk2lab.test, its CA
    mirror.add("cert-manager", "v1.16.5")
    mirror.add("rancher", "2.12.3")                     # kubeVersion from RANCHER_KUBE_VERSION
    mirror.start()                                      # https://charts.rk2lab.test:8443
    config = {"certManager": {"repository": mirror.url, "repositoryCaFile": mirror.ca_file}, ...}

What a chart repository is (Helm v3 pkg/repo/index.go IndexFile, ChartVersion; pkg/chart/
loader/archive.go): `index.yaml` with `apiVersion: v1`, `entries: {name: [chart metadata +
urls + digest]}` and `generated`; each package a gzipped tar whose members all sit under
`<chart name>/`. A relative url is resolved against the repository URL
(pkg/repo/chartrepo.go ResolveReferenceURL). The digest is the package's sha256.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import subprocess
import tarfile
import time
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from .realparts.pki import CA

CHARTS = Path(__file__).resolve().parent / "charts"
MIRROR_NAME = "charts.rk2lab.test"

# The Rancher chart's Kubernetes upper bound per minor, as its releases write it into
# chart/Chart.yaml (rancher/rancher chart/Chart.yaml `kubeVersion: < 1.N.0-0`; the per-minor
# list is in ../shared/reference/rke2-facts.md "Rancher chart"). Kept here, apart from
# components/versions.py, so the lab checks the product's table against Helm's verdict.
RANCHER_KUBE_VERSION = {"2.11": "< 1.33.0-0", "2.12": "< 1.34.0-0", "2.13": "< 1.35.0-0"}


def package(name: str, version: str, kube_version: str | None = None) -> tuple[bytes, dict]:
    """The .tgz of tests/lab/charts/<name> at `version`, and its Chart.yaml as a dict."""
    src = CHARTS / name
    if kube_version is None and name == "rancher":
        kube_version = RANCHER_KUBE_VERSION[".".join(version.split(".")[:2])]
    buf = io.BytesIO()
    chart_meta: dict = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if path.name == "Chart.yaml" and path.parent == src:
                text = data.decode().replace("%VERSION%", version.lstrip("v") if name == "rancher" else version)
                if kube_version is not None:
                    text = text.replace("%KUBE_VERSION%", kube_version)
                chart_meta = yaml.safe_load(text)
                data = text.encode()
            info = tarfile.TarInfo(f"{name}/{path.relative_to(src)}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), chart_meta


class ChartMirror:
    def __init__(self, lab, work_dir: Path, name: str = MIRROR_NAME, port: int = 8443):
        self.lab, self.name, self.port = lab, name, port
        self.dir = Path(work_dir) / "chart-mirror"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = CA.new("rk2lab-chart-mirror")
        self.ca_file = str(Path(work_dir) / "chart-mirror-ca.pem")
        Path(self.ca_file).write_bytes(self.ca.cert.public_bytes(Encoding.PEM))
        self.entries: dict[str, list[dict]] = {}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://{self.name}:{self.port}"

    def add(self, name: str, version: str, kube_version: str | None = None) -> None:
        data, meta = package(name, version, kube_version)
        filename = f"{name}-{meta['version']}.tgz"
        (self.dir / filename).write_bytes(data)
        created = datetime.datetime.now(datetime.timezone.utc).isoformat()
        entry = {**meta, "urls": [filename], "digest": hashlib.sha256(data).hexdigest(), "created": created}
        versions = [e for e in self.entries.get(name, []) if e["version"] != meta["version"]]
        self.entries[name] = [entry, *versions]
        self._write_index()

    def _write_index(self) -> None:
        index = {"apiVersion": "v1", "entries": self.entries,
                 "generated": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        (self.dir / "index.yaml").write_text(yaml.safe_dump(index, sort_keys=False))

    def start(self) -> str:
        """Serve the mirror from the workstation; `name` resolves to it on the lab network."""
        leaf, key = self.ca.issue(self.name, [ExtendedKeyUsageOID.SERVER_AUTH], [self.name])
        cert_file, key_file = self.dir.parent / "chart-mirror.crt", self.dir.parent / "chart-mirror.key"
        cert_file.write_bytes(leaf)
        key_file.write_bytes(key)
        key_file.chmod(0o600)
        self._write_index()
        log_path = self.dir.parent / "chart-mirror.log"
        log = open(log_path, "ab")
        self.proc = self.lab.popen([self.lab.python, "-u", str(Path(__file__).with_name("https_serve.py")),
                                    str(self.dir), self.lab.gateway, str(self.port), str(cert_file), str(key_file)],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.lab._servers.append(self.proc)
        self.lab.set_host_entry(self.name, self.lab.gateway)
        deadline = time.monotonic() + 10
        while b"Serving HTTPS" not in log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chart mirror failed: {log_path.read_text()[-1000:]}")
            time.sleep(0.05)
        self.log_path = log_path
        return self.url

    def requests(self) -> list[str]:
        """Request lines the mirror served ("GET /index.yaml HTTP/1.1" ...)."""
        text = self.log_path.read_text(errors="replace") if self.proc else ""
        return [line.split('"')[1] for line in text.splitlines() if line.count('"') >= 2]
