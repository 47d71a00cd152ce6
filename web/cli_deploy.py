"""`dispatch deploy nginx|systemd|ca|turnserver`: the files an admin installs, written
from the settings (dispatch/deploy.py, dispatch/lab_ca.py). Each writes to --out, or
prints to standard output when that is not given (secrets only ever to a file)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from dispatch import deploy, lab_ca
from dispatch.errors import InvalidInput
from dispatch.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    dep = sub.add_parser("deploy", parents=[common], help="nginx, systemd, TLS and TURN files")
    dsub = dep.add_subparsers(dest="deploy_command", required=True)

    ngx = dsub.add_parser("nginx", parents=[common], help="the nginx site (TLS in front)")
    ngx.add_argument("--cert", type=Path, required=True, help="certificate chain (PEM)")
    ngx.add_argument("--key", type=Path, required=True, help="its private key (PEM)")
    ngx.add_argument("--listen", help="nginx's listen value (default: the public URL's port)")
    ngx.add_argument("--out", type=Path, help="file to write (default: standard output)")
    ngx.set_defaults(run=cmd_nginx)

    unit = dsub.add_parser("systemd", parents=[common], help="the unit running `dispatch serve`")
    unit.add_argument("--out", type=Path, required=True, help="folder for the unit and env file")
    unit.add_argument("--user", default="dispatch", help="account the service runs as")
    unit.add_argument("--workdir", type=Path, default=Path.cwd(), help="default: here")
    unit.add_argument("--env-file", type=Path,
                      default=Path(f"/etc/{deploy.SITE_NAME}/{deploy.SITE_NAME}.env"),
                      help="where the environment file will be installed")  # fmt: skip
    unit.set_defaults(run=cmd_systemd)

    ca = dsub.add_parser("ca", parents=[common], help="a lab CA and a server certificate")
    ca.add_argument("--out", type=Path, required=True, help="folder (its ca.key is reused)")
    ca.add_argument("--name", action="append", default=[],
                    help="host name or IP address (repeat); default: the public URL's host")
    ca.set_defaults(run=cmd_ca)

    turn = dsub.add_parser("turnserver", parents=[common], help="coturn's configuration")
    turn.add_argument("--out", type=Path, required=True, help="file to write (mode 0600)")
    turn.add_argument("--port", type=int, default=3478, help="listening port (udp and tcp)")
    turn.add_argument("--relay-ports", default="49160-49999", metavar="MIN-MAX")
    turn.add_argument("--listen-ip", default="", help="listening and relay address")
    turn.add_argument("--external-ip", default="", help="public address behind NAT")
    turn.add_argument("--lab", action="store_true",
                      help="allow relaying to loopback (one-machine tests only)")  # fmt: skip
    turn.set_defaults(run=cmd_turnserver)


def _emit(text: str, out: Path | None, private: bool = False) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    if private:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        out.write_text(text, encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


def cmd_nginx(args: argparse.Namespace, settings: Settings) -> int:
    for path in (args.cert, args.key):
        if not path.is_file():
            raise InvalidInput(str(path), "no such file")
    site = deploy.nginx_site(settings, args.cert.resolve(), args.key.resolve(), args.listen)
    _emit(site, args.out)
    return 0


def cmd_systemd(args: argparse.Namespace, settings: Settings) -> int:
    exe = shutil.which("dispatch") or str(Path(sys.executable).with_name("dispatch"))
    unit = deploy.systemd_unit(settings, Path(exe), args.workdir.resolve(), args.env_file,
                               args.user)  # fmt: skip
    _emit(unit, args.out / f"{deploy.SITE_NAME}.service")
    _emit(deploy.environment_file(settings), args.out / f"{deploy.SITE_NAME}.env", private=True)
    return 0


def cmd_ca(args: argparse.Namespace, settings: Settings) -> int:
    names = args.name or [deploy.public_address(settings).host]
    files = lab_ca.write_lab_ca(args.out, names)
    print(f"CA (install it in the browsers): {files.ca_cert}")
    print(f"server certificate: {files.server_cert}\nserver key: {files.server_key}")
    return 0


def cmd_turnserver(args: argparse.Namespace, settings: Settings) -> int:
    low, _, high = args.relay_ports.partition("-")
    if not (low.isdigit() and high.isdigit()):
        raise InvalidInput("--relay-ports", f"expected MIN-MAX, got {args.relay_ports!r}")
    ports = deploy.TurnPorts(args.port, int(low), int(high))
    conf = deploy.turnserver_conf(settings, ports, args.listen_ip, args.external_ip, args.lab)
    _emit(conf, args.out, private=True)
    return 0
