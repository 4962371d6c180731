"""Local container images, built without a registry or Docker.

Writes OCI image-layout tarballs that ``ctr images import`` accepts:
- ``busybox`` (``docker.io/library/busybox:latest``) from Debian's ``busybox-static``,
  with one symlink per applet, so manifests that say ``image: busybox`` run unchanged;
- the sandbox ("pause") image from Debian's ``catatonit``, under containerd's
  ``sandbox_image`` name.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX_NAME = "docker.io/library/busybox:latest"
PAUSE_NAME = "registry.k8s.io/pause:3.6"
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MTIME = 0  # reproducible layers


@dataclass(slots=True)
class Image:
    name: str
    files: dict[str, bytes | str]  # path → content (bytes: a 0755 file; str: a symlink target)
    dirs: tuple[str, ...]
    entrypoint: list[str] | None
    cmd: list[str] | None


def _layer(image: Image) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in image.dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = (
                tarfile.DIRTYPE,
                0o1777 if d == "tmp" else 0o755,
                _MTIME,
            )
            tar.addfile(info)
        for path, content in sorted(image.files.items()):
            info = tarfile.TarInfo(path)
            info.mtime = _MTIME
            if isinstance(content, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = (
                    len(content),
                    0o755 if path.startswith("bin/") or path.endswith("catatonit") else 0o644,
                )
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _blob(blobs: dict[str, bytes], data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return digest


def write_oci_tar(image: Image, out: Path) -> Path:
    """Write ``image`` as an OCI image-layout tarball at ``out``."""
    layer = _layer(image)
    blobs: dict[str, bytes] = {}
    gz = gzip.compress(layer, mtime=0)
    layer_digest = _blob(blobs, gz)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": [_PATH],
            **({"Entrypoint": image.entrypoint} if image.entrypoint else {}),
            **({"Cmd": image.cmd} if image.cmd else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = _blob(blobs, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(gz),
            }
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = _blob(blobs, manifest_bytes)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": image.name,
                    "org.opencontainers.image.ref.name": image.name.rsplit(":", 1)[1],
                },
            }
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), _MTIME
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add(f"blobs/sha256/{digest.split(':', 1)[1]}", data)
    return out


def busybox_image(binary: Path = Path("/bin/busybox")) -> Image:
    """busybox with a symlink per applet, /etc/passwd and /etc/group."""
    applets = subprocess.run(
        [str(binary), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    files: dict[str, bytes | str] = {"bin/busybox": binary.read_bytes()}
    for applet in applets:
        if applet != "busybox":
            files[f"bin/{applet}"] = "busybox"
    files["etc/passwd"] = (
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    files["etc/group"] = b"root:x:0:\nnobody:x:65534:\n"
    return Image(
        BUSYBOX_NAME,
        files,
        ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "usr", "var"),
        None,
        ["sh"],
    )


def pause_image(binary: Path = Path("/usr/bin/catatonit"), name: str = PAUSE_NAME) -> Image:
    """The sandbox image: catatonit as PID 1, reaping children (``-P``: pause mode)."""
    return Image(
        name, {"catatonit": binary.read_bytes()}, ("proc", "sys", "dev"), ["/catatonit", "-P"], None
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m skiff.kubelet.local_images", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="folder for the image tarballs")
    a = p.parse_args(argv)
    for image, file in ((busybox_image(), "busybox.tar"), (pause_image(), "pause.tar")):
        print(write_oci_tar(image, a.out / file))


if __name__ == "__main__":
    main()
