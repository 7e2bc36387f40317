"""The `fr-gateway` command: subcommands that parse flags, build settings and call the package; no logic of its own."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import logging
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from fr_gateway import __version__
from fr_gateway.audit.keys import AuditKeyError
from fr_gateway.audit.log import AuditUnavailable
from fr_gateway.audit.trail import DECISIONS, OPERATIONS, Caller
from fr_gateway.calibration import StatedPoint, Threshold
from fr_gateway.config import Settings, audit_dir_for, load_settings, save_calibration
from fr_gateway.contract import face_pb2, recognition_pb2, recognition_pb2_grpc, watchlists_pb2
from fr_gateway.decision import Decision
from fr_gateway.gallery.store import GalleryModelMismatch, GalleryRefused
from fr_gateway.reasons import Problem
from fr_gateway.search.base import SearchUnavailable
from fr_gateway.security.certs import ROLES, CertificateError, TlsFiles
from fr_gateway.security.keys import KeyRingError
from fr_gateway.transport import CannotListen, open_channel
from fr_gateway.watchlists.store import WatchlistError

if TYPE_CHECKING:
    from fr_gateway.changes import RemoveResult

log = logging.getLogger("fr_gateway")

# exit statuses, one meaning each, so scripts can tell them apart
EXIT_FAILED = 1  # the gateway answered an error, the audit log is damaged, or `gallery sync --check` found drift
EXIT_INPUT = 2  # the command's own input: flags, files, keys, certificates, settings
EXIT_MODEL = 3  # the gallery or calibration belongs to another model
EXIT_LISTEN = 4  # an address to serve on cannot be bound
EXIT_UNREACHABLE = 5  # the shared search backend (Milvus) cannot be reached
EXIT_GALLERY = 6  # the gallery's store, key and saved index do not belong together, or others can read them


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return load_settings(args.config, {"model_dir": args.model_dir, **overrides})


def _face(path: str, aligned: bool = False) -> face_pb2.Face:
    return face_pb2.Face(image=Path(path).read_bytes(), kind=face_pb2.ALIGNED if aligned else face_pb2.LOOSE)


def _channel(args: argparse.Namespace) -> grpc.Channel:
    """Mutual TLS when the client's certificate is given (checked here first), else plaintext (a gateway started
    --insecure)."""
    return open_channel(args.target, TlsFiles.from_flags(args.cert, args.key, args.ca))


def _camera_id(args: argparse.Namespace, tls: TlsFiles | None) -> str:
    """--camera-id, else the camera a camera certificate names (the gateway refuses any other), else `cli`."""
    if args.camera_id:
        return args.camera_id
    principal = tls.principal() if tls else None
    return principal.identity if principal and principal.role == "camera" else "cli"


def cmd_serve(args: argparse.Namespace) -> int:
    from fr_gateway.server.app import serve

    tls = {}
    if args.certs:
        tls = {name: str(Path(args.certs) / file) for name, file in
               (("tls_cert", "server.pem"), ("tls_key", "server.key"), ("tls_ca", "ca.pem"))}
    serve(_settings(args, listen=args.listen, gallery=args.gallery, metrics_listen=args.metrics_listen, **tls),
          args.insecure, args.port_file)
    return 0


def cmd_camera(args: argparse.Namespace) -> int:
    from fr_gateway.camera.client import CameraClient, DecisionRecord
    from fr_gateway.camera.display import Overlay, VideoFile, Window, window_unavailable
    from fr_gateway.camera.sources import open_frames
    from fr_gateway.faces.engine import load_detector, load_pack
    from fr_gateway.faces.models import choose_providers

    if args.show and (why := window_unavailable()):
        print(f"--show: {why}; --annotate FILE.avi writes the same view to a file", file=sys.stderr)
        return 2
    frames = open_frames(args.source)  # the camera's own input is checked before the models load
    settings = _settings(args)
    pack = load_pack(settings)
    detector = load_detector(settings, pack, choose_providers(settings.providers))
    if args.max_frames:
        frames = (frame for frame in frames if frame.index < args.max_frames)
    with contextlib.ExitStack() as stack:
        jsonl = stack.enter_context(Path(args.jsonl).open("w")) if args.jsonl else None
        screens = ([Window()] if args.show else []) + ([VideoFile(Path(args.annotate))] if args.annotate else [])
        overlay = stack.enter_context(contextlib.closing(Overlay(screens)))

        def show(record: DecisionRecord) -> None:
            print(record.line(), flush=True)
            overlay.decided(record)
            if jsonl:
                jsonl.write(json.dumps(dataclasses.asdict(record)) + "\n")

        channel = stack.enter_context(_channel(args))
        client = CameraClient(detector, channel, args.camera_id, tracking=not args.no_tracking,
                              on_frame=overlay.frame if screens else None)
        stats = client.run(frames, show)
    counts = ", ".join(f"{name} {n}" for name, n in sorted(stats.decisions.items()))
    print(f"camera {args.camera_id}: {stats.frames} frames, {stats.faces} faces in {stats.seconds:.1f} s "
          f"({stats.faces_per_second:.1f} faces/s), {stats.sent} crops sent, {stats.reconnects} reconnects; "
          f"{counts}")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from fr_gateway.enrolment import run_enrolment

    manifest = Path(args.manifest)
    rejects = Path(args.rejects) if args.rejects else manifest.with_suffix(".rejects.csv")
    if args.target:
        with _channel(args) as channel:
            summary = run_enrolment(manifest, rejects, channel=channel, progress=not args.no_progress)
    else:
        from fr_gateway.maintenance import offline_service

        with offline_service(_settings(args, gallery=args.gallery)) as service:
            summary = run_enrolment(manifest, rejects, service=service, progress=not args.no_progress)
    print(summary.line())
    if summary.counts["rejected"]:
        print(f"rejected records, with reasons, are in {rejects}: fix them and run it as a manifest")
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    tls = TlsFiles.from_flags(args.cert, args.key, args.ca)
    with open_channel(args.target, tls) as channel:
        response = recognition_pb2_grpc.RecognitionStub(channel).Identify(recognition_pb2.IdentifyRequest(
            camera_id=_camera_id(args, tls), face=_face(args.image, args.aligned), top_k=args.top_k))
    print(f"{face_pb2.Decision.Name(response.decision)} (threshold {response.threshold:.2f}, "
          f"gallery {response.gallery_size}) {response.detail}".rstrip())
    for rank, candidate in enumerate(response.candidates, start=1):
        print(f"  {rank}. NIK {candidate.nik}  score {candidate.score:.3f}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    request = recognition_pb2.VerifyRequest(probe=_face(args.probe))
    if args.nik:
        request.nik = args.nik
    else:
        request.reference_face.CopyFrom(_face(args.reference))
    with _channel(args) as channel:
        response = recognition_pb2_grpc.RecognitionStub(channel).Verify(request)
    print(f"{face_pb2.Decision.Name(response.decision)}: score {response.score:.3f}, "
          f"threshold {response.threshold:.2f} {response.detail}".rstrip())
    return 0


def _threshold(info: recognition_pb2.ThresholdInfo) -> Threshold:
    point = None
    if info.HasField("operating_point"):
        found = info.operating_point
        point = StatedPoint(info.threshold, found.false_metric, found.false_rate, found.negatives,
                            found.other_metric, found.other_rate, found.positives,
                            found.target if found.HasField("target") else None)
    return Threshold(info.threshold, info.origin, point, info.data)


def cmd_info(args: argparse.Namespace) -> int:
    with _channel(args) as channel:
        info = recognition_pb2_grpc.RecognitionStub(channel).GetInfo(recognition_pb2.GetInfoRequest(), timeout=30)
    print(f"fr-gateway {info.version}: model {info.model} (sha256 {info.model_fingerprint}) on "
          f"{', '.join(info.providers)}; gallery {info.gallery_size} templates")
    print(f"search: {info.search}")
    print(f"Identify threshold {_threshold(info.identify).text()}")
    print(f"Verify threshold {_threshold(info.verify).text()}")
    for watchlist in info.watchlists:
        print(_watchlist_text(watchlist))
    return 0


def _watchlist_text(info: watchlists_pb2.WatchlistInfo) -> str:
    """A list in a few lines: what it is, what its threshold stands for, how its alerts were adjudicated."""
    expires = f", expires {info.expires}" if info.expires else ""
    lines = [f"watchlist {info.name} ({watchlists_pb2.Priority.Name(info.priority).removeprefix('PRIORITY_')}, "
             f"owner {info.owner}{expires}): {info.entries} entries, {info.templates} templates; {info.reason}",
             f"  threshold {info.threshold:.4f} ({info.threshold_origin})"]
    if info.HasField("false_match_rate"):
        lines.append(f"  stands for a false-match rate of {info.false_match_rate:.3g} a comparison in the calibration "
                     f"data: FPIR {info.expected_fpir:.3g} at this size, about "
                     f"{info.expected_false_alerts_per_day:,.0f} false alerts a day at the configured faces a day")
    adjudicated = info.confirmed + info.dismissed
    precision = f"; observed precision {info.confirmed / adjudicated:.3f}" if adjudicated else ""
    lines.append(f"  alerts {info.alerts}: {info.confirmed} confirmed, {info.dismissed} dismissed, "
                 f"{info.alerts - adjudicated} not adjudicated{precision}")
    return "\n".join(lines)


def cmd_watchlist(args: argparse.Namespace) -> int:
    """Offline, through the watchlists' write path (audited); a running gateway is changed over gRPC."""
    from fr_gateway.faces.crops import CropKind
    from fr_gateway.maintenance import offline_service
    from fr_gateway.server.servicers import watchlist_info
    from fr_gateway.service import FaceInput

    caller = Caller.local()
    with offline_service(_settings(args, gallery=args.gallery)) as service:
        desk = service.watchlists
        if args.action == "create":
            desk.create(args.name, args.reason, args.owner, caller, expires=args.expires or "",
                        threshold=args.threshold, target_fpir=args.target_fpir,
                        expected_templates=args.expected_templates,
                        priority=watchlists_pb2.Priority.Value(f"PRIORITY_{args.priority.upper()}"))
        elif args.action == "add":
            faces = [FaceInput(Path(photo).read_bytes(), CropKind.LOOSE) for photo in args.photo]
            result = service.add_watchlist_entry(args.name, args.label, args.case or "", args.expires or "", faces,
                                                 caller)
            for position, problem in result.rejects:
                print(f"{args.photo[position]}: not used: {problem.reason.name}: {problem.detail}")
            if result.entry is None:
                print("no photo gave a template: nothing added")
                return EXIT_INPUT
            print(f"added entry {result.entry.entry_id} to {args.name} ({len(result.entry.templates)} templates)")
            return 0
        elif args.action == "remove":
            removed = desk.remove_entry(args.name, args.entry, caller)
            print(f"{args.entry}: {'removed' if removed else 'not on ' + args.name}")
            return 0 if removed else EXIT_INPUT
        for status in desk.statuses():
            if args.action == "list" or status.watchlist.name == args.name:
                print(_watchlist_text(watchlist_info(status)))
    return 0


def _models(args: argparse.Namespace) -> list[tuple[str, dict[str, str]]]:
    """The model under evaluation and those compared with it: a pack directory, or a recogniser .onnx file
    run with the default detector."""
    models = [(Path(args.model_dir).name if args.model_dir else "default pack (buffalo_s)",
               {"model_dir": args.model_dir} if args.model_dir else {})]
    for path in map(Path, args.compare):
        if not path.exists():
            raise FileNotFoundError(f"--compare {path}: no such model directory or file")
        models.append((path.name, {"recognizer_file": str(path)} if path.is_file() else {"model_dir": str(path)}))
    return models


def cmd_eval(args: argparse.Namespace) -> int:
    from fr_gateway.evaluation.dataset import Dataset
    from fr_gateway.evaluation.harness import evaluate_gateway, evaluate_models
    from fr_gateway.evaluation.report import write_report

    if args.pairs and len(args.data) > 1:
        raise ValueError("--pairs goes with one dataset folder")
    dataset = Dataset.load(args.data[0], args.pairs) if args.pairs else Dataset.combine(args.data)
    print(f"evaluating on {dataset.text()}", file=sys.stderr)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.target:
        if args.compare:
            raise ValueError("--compare starts gateways of its own: leave out --target")
        with _channel(args) as channel:
            runs = [evaluate_gateway(channel, dataset, args.target, args.leave_out_every, progress)]
    else:
        serve_args = ["--config", args.config] if args.config else []
        with tempfile.TemporaryDirectory(prefix="fr-gateway-eval-") as scratch:
            runs = evaluate_models(dataset, _models(args), Path(scratch), serve_args, args.leave_out_every, progress)
    for path in write_report(Path(args.out), runs, shlex.join(["fr-gateway", *sys.argv[1:]])):
        print(f"wrote {path}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from fr_gateway.evaluation.calibrate import calibrate

    runs = json.loads(Path(args.report).read_text())["runs"]
    chosen = [run for run in runs if args.model in (None, run["label"], run["model"])]
    if not chosen:
        raise ValueError(f"{args.report} has no run of {args.model!r}: it has {[run['label'] for run in runs]}")
    calibration = calibrate(chosen[0], args.report, args.fpir, args.far, args.identify_threshold,
                            args.verify_threshold)
    save_calibration(args.config, calibration)
    print(f"{args.config}: {calibration.model} on {calibration.data}")
    print(f"Identify {calibration.identify.text()}")
    print(f"Verify {calibration.verify.text()}")
    return 0


def _removed(result: RemoveResult) -> str:
    """One line per NIK: what happened to it."""
    if result.decision is Decision.REJECTED:
        return f"{result.nik}: not erased: {result.detail}"
    said = "erased" if result.removed else "not enrolled"
    return f"{result.nik}: {said}; {result.detail}" if result.detail else f"{result.nik}: {said}"


def cmd_gallery_remove(args: argparse.Namespace) -> int:
    """Through the running gateway with --target (its Remove: store, index, audit), else offline through the
    same write path; each NIK on its own, so one mistyped NIK does not hide what happened to the others."""
    from fr_gateway.changes import RemoveResult
    from fr_gateway.contract import gallery_pb2, gallery_pb2_grpc
    from fr_gateway.reasons import Reason

    invalid = 0
    if args.target:
        with _channel(args) as channel:
            stub = gallery_pb2_grpc.GalleryStub(channel)
            for nik in args.nik:
                try:
                    answer = stub.Remove(gallery_pb2.RemoveRequest(nik=nik), timeout=60)
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                        raise
                    invalid += 1
                    print(f"{nik}: not erased: {exc.details()}", flush=True)
                    continue
                reason = Reason[face_pb2.Reason.Name(answer.reason)] if answer.reason else None
                print(_removed(RemoveResult(answer.nik, answer.removed, reason, answer.detail)), flush=True)
        return EXIT_INPUT if invalid else 0
    from fr_gateway.maintenance import offline_gallery

    with offline_gallery(_settings(args, gallery=args.gallery)) as gallery:
        for nik in args.nik:
            result = gallery.remove(nik, Caller.local())
            invalid += result.decision is Decision.REJECTED
            print(_removed(result), flush=True)
    return EXIT_INPUT if invalid else 0


def cmd_gallery_duplicates(args: argparse.Namespace) -> int:
    from fr_gateway.maintenance import duplicate_pairs

    pairs, threshold = duplicate_pairs(_settings(args, gallery=args.gallery), args.threshold)
    for first, second, score in pairs:
        print(f"{first} {second} {score:.3f}")
    print(f"{len(pairs)} pairs of different NIKs score at or above {threshold:.2f}", file=sys.stderr)
    return 0


def cmd_gallery_sync(args: argparse.Namespace) -> int:
    from fr_gateway.maintenance import sync_shared_index

    spec, drift, held = sync_shared_index(_settings(args, gallery=args.gallery), repair=not args.check)
    outcome = "in step" if not drift else ("found, not repaired (--check)" if args.check else "repaired")
    print(f"Milvus collection {spec.collection} at {spec.uri} against the store's {held} templates: "
          f"{drift.text()}: {outcome}")
    return EXIT_FAILED if drift and args.check else 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Through the running gateway with --target, else offline through the gallery's write path; audited."""
    from fr_gateway.changes import Rotation
    from fr_gateway.contract import gallery_pb2, gallery_pb2_grpc

    if args.target:
        with _channel(args) as channel:
            answer = gallery_pb2_grpc.GalleryStub(channel).RotateKeys(gallery_pb2.RotateKeysRequest(
                retire=args.retire), timeout=3600)
        rotation = Rotation(answer.active_key, answer.resealed, tuple(answer.retired))
    else:
        from fr_gateway.maintenance import offline_gallery

        with offline_gallery(_settings(args, gallery=args.gallery)) as gallery:
            rotation = gallery.rotate_keys(Caller.local(), args.retire)
    print(rotation.text())
    return 0


LOCAL_HOSTS = ("localhost", "127.0.0.1")  # the names a server certificate carries when none is given


def cmd_certs_init(args: argparse.Namespace) -> int:
    from fr_gateway.security.certs import Authority, parse_principal

    folder = Path(args.dir)
    if (folder / "ca.key").exists():
        raise CertificateError(f"{folder} already holds a CA; issue more certificates with `certs issue`")
    authority = Authority.create(days=args.days * 10)
    authority.save(folder)
    print(f"CA: {folder / 'ca.pem'} (its key ca.key signs every certificate: keep it offline)")
    hosts = args.host or list(LOCAL_HOSTS)
    print(f"server: {authority.issue_server(folder, hosts, days=args.days)} for {', '.join(hosts)}")
    for text in args.client:
        principal = parse_principal(text)
        print(f"{principal.role}: {authority.issue_client(folder, principal, days=args.days)} ({principal.uri})")
    return 0


def cmd_certs_issue(args: argparse.Namespace) -> int:
    from fr_gateway.security.certs import Authority, parse_principal

    authority = Authority.load(Path(args.dir))
    for text in args.client:
        principal = parse_principal(text)
        issued = authority.issue_client(Path(args.dir), principal, days=args.days, replace=args.force)
        print(f"{principal.role}: {issued} ({principal.uri})")
    return 0


def cmd_certs_server(args: argparse.Namespace) -> int:
    from fr_gateway.security.certs import Authority

    hosts = args.host or list(LOCAL_HOSTS)
    issued = Authority.load(Path(args.dir)).issue_server(Path(args.dir), hosts, days=args.days, stem=args.name)
    print(f"server: {issued} for {', '.join(hosts)}")
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from fr_gateway.console.gateways import ClientFiles
    from fr_gateway.console.server import ConsoleConfig, serve

    if not (args.https_cert and args.https_key):
        raise ValueError("the console serves HTTPS only: give --https-cert and --https-key (`fr-gateway certs server "
                         "console --dir CA_FOLDER --host NAME` issues them)")
    client = TlsFiles.from_flags(args.cert, args.key, args.ca)
    if client is not None and client.principal().role not in ("operator", "admin"):
        raise CertificateError(f"{args.cert} is a {client.principal().role} certificate: the console needs an "
                               "operator's (`fr-gateway certs issue --client operator:console-1`)")
    logging.getLogger("fr_gateway.console").setLevel(logging.INFO)
    files = ClientFiles(Path(args.cert), Path(args.key), Path(args.ca)) if client else None
    serve(ConsoleConfig(tuple(args.gateway or ["127.0.0.1:50051"]), files, args.listen, Path(args.https_cert),
                        Path(args.https_key), Path(args.users)), args.port_file)
    return 0


def cmd_console_users(args: argparse.Namespace) -> int:
    import getpass

    from fr_gateway.console.users import UserStore

    users = UserStore(args.users)
    try:
        if args.action == "add":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass(f"password for {args.name}: ")
                if getpass.getpass("again: ") != password:
                    raise ValueError("the two passwords differ")
            user = users.add(args.name, args.role, password, replace=args.replace)
            print(f"{user.name}: {user.role} in {args.users}")
        elif args.action == "remove":
            if not users.remove(args.name):
                raise ValueError(f"no user {args.name} in {args.users}")
            print(f"{args.name} removed; their sessions end when the console restarts or they sit idle")
        else:
            for user in users.users():
                print(f"{user.name}\t{user.role}")
    finally:
        users.close()
    return 0


def cmd_audit_keys(args: argparse.Namespace) -> int:
    from fr_gateway.audit.keys import SIGNING_KEY, issue

    if args.action == "init" and (Path(args.gateway) / SIGNING_KEY).exists():
        raise AuditKeyError(f"{args.gateway} already holds audit keys; use `audit keys rotate`")
    both = not (args.signer or args.reader)
    made = issue(args.gateway, args.auditor, signer=both or args.signer, reader=both or args.reader)
    print(f"gateway keys in {args.gateway} (signing.key, reader.pub); auditor keys in {args.auditor}: "
          f"{', '.join(made)}" + ("; restart the gateway to use them" if args.action == "rotate" else ""))
    return 0


def _audit_folder(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else audit_dir_for(_settings(args))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from fr_gateway.audit import witness
    from fr_gateway.audit.keys import AuditorKeys
    from fr_gateway.audit.verify import verify

    signers = AuditorKeys.load(args.keys, need_readers=False).signers
    report = verify(_audit_folder(args), signers, witnesses=witness.sources(Path(args.keys), args.witness, signers))
    witness.record_seen(Path(args.keys), report.last_checkpoint, report.intact, signers)
    print(report.text())
    return EXIT_INPUT if report.wrong_keys else 0 if report.intact else EXIT_FAILED


def cmd_audit_export(args: argparse.Namespace) -> int:
    from fr_gateway.audit import witness
    from fr_gateway.audit.export import Selection, export
    from fr_gateway.audit.keys import AuditorKeys

    selection = Selection(args.start, args.end, args.camera, args.nik, args.operation, args.decision)
    keys = AuditorKeys.load(args.keys)
    witnesses = witness.sources(Path(args.keys), args.witness, keys.signers)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(Path(args.out).open("w", newline="")) if args.out else sys.stdout
        exported = export(_audit_folder(args), keys, out, args.format, selection, witnesses)
    witness.record_seen(Path(args.keys), exported.report.last_checkpoint, exported.report.intact, keys.signers)
    print(exported.report.text(), file=sys.stderr)
    print(f"exported {exported.written} records" + "".join(
        f"; {n} unreadable: {why}" for why, n in exported.unreadable.items()), file=sys.stderr)
    if exported.report.wrong_keys:
        return EXIT_INPUT
    return 0 if exported.report.intact and not exported.unreadable else EXIT_FAILED


class Parser(argparse.ArgumentParser):
    """No prefix abbreviations: `--port 50060` is an unknown flag, not a silent `--port-file`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _utc_time(text: str) -> datetime.datetime:
    """argparse type for --from and --to, so a bad date is reported with its flag."""
    from fr_gateway.audit.log import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or time (2026-11-30, 2026-11-30T08:00 or "
                                         "2026-11-30T08:00+07:00; UTC when no zone is given)") from None


def _option_parsers() -> dict[str, Parser]:
    """Flags several commands share: settings, a client's mutual-TLS files, and where the gateway is."""
    common = Parser(add_help=False)
    common.add_argument("--config", help="TOML settings file (also FRG_CONFIG)")
    common.add_argument("--model-dir", help="insightface pack directory (default: the offline buffalo_s pack)")
    tls = Parser(add_help=False)
    tls.add_argument("--cert", help="client certificate (PEM) for mutual TLS; with --key and --ca; without all "
                                    "three, plaintext (a gateway started --insecure)")
    tls.add_argument("--key", help="the client certificate's private key")
    tls.add_argument("--ca", help="the CA certificate that signed the gateway's and the client's certificates")
    client = Parser(add_help=False, parents=[tls])
    client.add_argument("--target", default="127.0.0.1:50051",
                        help="gateway HOST:PORT, or several replicas HOST:PORT,HOST:PORT (balanced round robin; "
                             "default %(default)s)")
    return {"common": common, "tls": tls, "client": client}


def _add_serve(sub: argparse._SubParsersAction, parents: dict[str, Parser]) -> None:
    serve = sub.add_parser("serve", parents=[parents["common"]], help="run the gateway")
    serve.add_argument("--listen", help="gRPC HOST:PORT (default 127.0.0.1:50051; the listen setting)")
    serve.add_argument("--metrics-listen", metavar="HOST:PORT",
                       help="Prometheus metrics address (default 127.0.0.1:9464; port 0 picks a free one; an empty "
                            "value switches metrics off; the metrics_listen setting)")
    serve.add_argument("--gallery", help="gallery directory, created empty if missing (default index/default)")
    serve.add_argument("--certs", help="folder from `certs init` (server.pem, server.key, ca.pem); default: the "
                                       "tls_* settings")
    serve.add_argument("--insecure", action="store_true",
                       help="plaintext gRPC with no client authentication: loopback and demos only")
    serve.add_argument("--port-file", type=Path, help="write the bound port here once serving (for scripts)")
    serve.set_defaults(run=cmd_serve)


def _add_clients(sub: argparse._SubParsersAction, parents: dict[str, Parser]) -> None:
    """The commands that call a running gateway, and bulk enrolment."""
    camera = sub.add_parser("camera", parents=[parents["common"], parents["client"]],
                            help="stream a camera source through a gateway")
    camera.add_argument("--source", required=True, help="video file, image folder, RTSP URL or device number")
    camera.add_argument("--camera-id", required=True, help="this camera's id; with mutual TLS, the one its "
                                                           "certificate names")
    camera.add_argument("--jsonl", help="also write every decision to this JSON Lines file")
    camera.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (default: all)")
    camera.add_argument("--show", action="store_true",
                        help="a window with each face boxed and named by its decision (needs a display)")
    camera.add_argument("--annotate", metavar="FILE.avi", help="write that view to a video file (works headless)")
    camera.add_argument("--no-tracking", action="store_true",
                        help="send every face of every frame instead of the best few crops of each track")
    camera.set_defaults(run=cmd_camera)

    enroll = sub.add_parser("enroll", parents=[parents["common"], parents["tls"]],
                            help="enrol a manifest (CSV or JSONL of nik,photo)")
    enroll.add_argument("--manifest", required=True, help="CSV with a header naming nik and photo (other columns "
                                                          "are attributes), or JSON Lines")
    where = enroll.add_mutually_exclusive_group()
    where.add_argument("--gallery", help="enrol offline into this gallery: a name under index/ or a directory")
    where.add_argument("--target", help="enrol through a running gateway's EnrollStream (HOST:PORT) instead")
    enroll.add_argument("--rejects", help="where to write rejected records (default MANIFEST.rejects.csv)")
    enroll.add_argument("--no-progress", action="store_true", help="no progress bar")
    enroll.set_defaults(run=cmd_enroll)

    identify = sub.add_parser("identify", parents=[parents["client"]],
                              help="identify one photo against a running gateway")
    identify.add_argument("--image", required=True, help="the photo (a loose photo, or see --aligned)")
    identify.add_argument("--aligned", action="store_true", help="the image is a 112x112 aligned crop")
    identify.add_argument("--top-k", type=int, default=5, help="candidates to show (default %(default)s)")
    identify.add_argument("--camera-id", help="camera id for the decision record (default: the camera a camera "
                                              "certificate names, else cli)")
    identify.set_defaults(run=cmd_identify)

    verify = sub.add_parser("verify", parents=[parents["client"]],
                            help="verify one photo against a NIK or a second photo")
    verify.add_argument("--probe", required=True, help="the photo to verify")
    reference = verify.add_mutually_exclusive_group(required=True)
    reference.add_argument("--nik", help="the enrolled NIK to compare with")
    reference.add_argument("--reference", help="second photo to compare with")
    verify.set_defaults(run=cmd_verify)
    info = sub.add_parser("info", parents=[parents["client"]],
                          help="what a running gateway runs, and what its thresholds stand for")
    info.set_defaults(run=cmd_info)


def _add_accuracy(sub: argparse._SubParsersAction, parents: dict[str, Parser]) -> None:
    evaluation = sub.add_parser("eval", parents=[parents["common"], parents["tls"]],
                                help="measure accuracy over gRPC on labelled data: a report with DET/ROC plots")
    evaluation.add_argument("data", nargs="+", help="dataset folders (<folder>/<identity>/<image>); a pairs.csv "
                                                    "(img1,img2,same) in a folder is read with it")
    evaluation.add_argument("--out", required=True, help="folder for eval.json, report.md, det.png, roc.png")
    evaluation.add_argument("--pairs", help="pairs file for a single dataset: LFW pairs.txt or CSV img1,img2,same")
    evaluation.add_argument("--compare", action="append", default=[], metavar="MODEL",
                            help="also evaluate this model: a pack directory, or a recogniser .onnx file run "
                                 "with the default detector (repeatable)")
    evaluation.add_argument("--leave-out-every", type=int, default=3, metavar="N",
                            help="one identity in N stays out of the gallery, for non-mated searches (default 3)")
    evaluation.add_argument("--target", help="evaluate this running gateway (its gallery must be empty) instead "
                                             "of starting one per model")
    evaluation.set_defaults(run=cmd_eval)

    calibration = sub.add_parser("calibrate", help="choose thresholds from an eval report and write them, with "
                                                   "what they stand for, into a config file")
    calibration.add_argument("report", help="eval.json written by `fr-gateway eval`")
    calibration.add_argument("--config", required=True, help="TOML settings file to write (created if missing)")
    calibration.add_argument("--model", help="which model's run (its label or file name; default: the first)")
    identify_choice = calibration.add_mutually_exclusive_group(required=True)
    identify_choice.add_argument("--fpir", type=float, help="target FPIR for Identify (e.g. 0.01)")
    identify_choice.add_argument("--identify-threshold", type=float, help="or keep this threshold, and state it")
    verify_choice = calibration.add_mutually_exclusive_group(required=True)
    verify_choice.add_argument("--far", type=float, help="target FAR for Verify (e.g. 0.001)")
    verify_choice.add_argument("--verify-threshold", type=float, help="or keep this threshold, and state it")
    calibration.set_defaults(run=cmd_calibrate)


def _add_change_target(command: Parser, where: str, doing: str) -> None:
    """A gallery change runs in the running gateway (--target) or offline (--gallery), never both."""
    chosen = command.add_mutually_exclusive_group()
    chosen.add_argument("--gallery", help=f"{doing} offline, while no gateway serves it: {where}")
    chosen.add_argument("--target", help=f"{doing} in the running gateway at HOST:PORT (as an admin): calls keep "
                                         "working")


def _add_gallery(sub: argparse._SubParsersAction, parents: dict[str, Parser]) -> None:
    gallery = sub.add_parser("gallery", help="gallery maintenance").add_subparsers(dest="action", required=True)
    where = "gallery directory, or a name under index/ (default index/default)"
    remove = gallery.add_parser("remove", parents=[parents["common"], parents["tls"]],
                                help="erase NIKs from the store and the index, audited; each NIK is reported")
    _add_change_target(remove, where, "erase")
    remove.add_argument("nik", nargs="+", help="16-digit NIKs to erase")
    remove.set_defaults(run=cmd_gallery_remove)
    duplicates = gallery.add_parser("duplicates", parents=[parents["common"]],
                                    help="pairs of different NIKs whose templates match (one person, two NIKs?)")
    duplicates.add_argument("--gallery", help=where)
    duplicates.add_argument("--threshold", type=float, help="default: the identify threshold")
    duplicates.set_defaults(run=cmd_gallery_duplicates)
    sync = gallery.add_parser("sync", parents=[parents["common"]],
                              help="make the shared Milvus collection match the store (the source of truth)")
    sync.add_argument("--gallery", help=where)
    sync.add_argument("--check", action="store_true",
                      help=f"report drift only: exit {EXIT_FAILED} when there is some, {EXIT_UNREACHABLE} when "
                           "Milvus cannot be reached")
    sync.set_defaults(run=cmd_gallery_sync)

    keys = sub.add_parser("keys", help="data keys of a gallery").add_subparsers(dest="action", required=True)
    rotate = keys.add_parser("rotate", parents=[parents["common"], parents["tls"]],
                             help="new active key; re-encrypt every template with it (audited)")
    _add_change_target(rotate, where, "rotate")
    rotate.add_argument("--retire", action="store_true", help="then drop old keys no template uses")
    rotate.set_defaults(run=cmd_keys_rotate)


def _add_certs(sub: argparse._SubParsersAction) -> None:
    certs = sub.add_parser("certs", help="private CA and certificates for mutual TLS") \
        .add_subparsers(dest="action", required=True)
    init = certs.add_parser("init", help="create a CA, the server's certificate and any client certificates")
    init.add_argument("--dir", default="certs", help="folder to create (default %(default)s; it holds the CA's "
                                                     "key: keep it off the gateway's disk)")
    init.add_argument("--host", action="append", default=None, help="server name or IP (repeat; default "
                                                                     f"{' and '.join(LOCAL_HOSTS)})")
    init.add_argument("--client", action="append", default=[], metavar="ROLE:ID",
                      help=f"a client certificate, e.g. camera:CAM-017 (repeat); roles: {', '.join(ROLES)}")
    init.add_argument("--days", type=int, default=365, help="validity of the certificates (the CA: ten times)")
    init.set_defaults(run=cmd_certs_init)
    issue = certs.add_parser("issue", help="client certificates signed by an existing CA")
    issue.add_argument("--dir", default="certs", help="the CA's folder, where the certificates are written too")
    issue.add_argument("--client", action="append", required=True, metavar="ROLE:ID",
                       help=f"a client certificate, e.g. verifier:V-1 (repeat); roles: {', '.join(ROLES)}")
    issue.add_argument("--days", type=int, default=365, help="validity (default %(default)s days)")
    issue.add_argument("--force", action="store_true", help="replace a certificate and key that already exist")
    issue.set_defaults(run=cmd_certs_issue)
    server = certs.add_parser("server", help="a server certificate signed by an existing CA (the console's HTTPS)")
    server.add_argument("name", help="its file name: NAME.pem and NAME.key in --dir")
    server.add_argument("--dir", default="certs", help="the CA's folder, where the certificate is written too")
    server.add_argument("--host", action="append", default=None, help="server name or IP (repeat; default "
                                                                       f"{' and '.join(LOCAL_HOSTS)})")
    server.add_argument("--days", type=int, default=365, help="validity (default %(default)s days)")
    server.set_defaults(run=cmd_certs_server)


def _add_console(sub: argparse._SubParsersAction, parents: dict[str, Parser]) -> None:
    console = sub.add_parser("console", parents=[parents["tls"]],
                             help="the Command Center web console (HTTPS), a client of one or more gateways")
    console.add_argument("--gateway", action="append", default=[], metavar="HOST:PORT",
                         help="a gateway to follow (repeat for several; default 127.0.0.1:50051)")
    console.add_argument("--listen", default="127.0.0.1:8443", help="HTTPS HOST:PORT (default %(default)s)")
    console.add_argument("--https-cert", help="the console's HTTPS certificate (`fr-gateway certs server console`)")
    console.add_argument("--https-key", help="its private key")
    console.add_argument("--port-file", type=Path, help="write the bound HTTPS port here once serving")
    users_file = "console-users.sqlite3"
    console.add_argument("--users", default=users_file, help="the console's accounts (default %(default)s)")
    console.set_defaults(run=cmd_console)
    actions = console.add_subparsers(dest="console_command")
    users = actions.add_parser("users", help="the console's accounts").add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="add an account (its password asked for twice)")
    add.add_argument("name", help="1-64 letters, digits, '.', '_', '@' or '-'")
    add.add_argument("--role", required=True, choices=("operator", "supervisor"),
                     help="operator: live view and adjudication; supervisor: also analytics and the audit summary")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of "
                                                                   "standard input (for scripts)")
    add.add_argument("--replace", action="store_true", help="set a new role and password for an existing account")
    remove = users.add_parser("remove", help="remove an account")
    remove.add_argument("name", help="the account")
    listing = users.add_parser("list", help="every account and its role")
    for command in (add, remove, listing):
        command.add_argument("--users", default=users_file, help="the console's accounts (default %(default)s)")
        command.set_defaults(run=cmd_console_users)


def _add_audit(sub: argparse._SubParsersAction, parents: dict[str, Parser]) -> None:
    audit = sub.add_parser("audit", help="the audit log: keys, verification, export") \
        .add_subparsers(dest="action", required=True)
    audit_keys = audit.add_parser("keys", help="audit keys").add_subparsers(dest="action", required=True)
    for name, text in (("init", "create the signing and reading key pairs"),
                       ("rotate", "new key pairs; the auditor keeps the old ones to read older records")):
        keys_command = audit_keys.add_parser(name, help=text)
        keys_command.add_argument("--gateway", required=True, help="the gateway's folder (audit_keys setting)")
        keys_command.add_argument("--auditor", required=True, help="the auditor's folder")
        keys_command.add_argument("--signer", action="store_true", help="only the signing key")
        keys_command.add_argument("--reader", action="store_true", help="only the reading key")
        keys_command.set_defaults(run=cmd_audit_keys)
    for name, run, text in (
            ("verify", cmd_audit_verify, f"check the chain, signatures, head and witnesses; exit {EXIT_FAILED} if "
                                         f"damaged or rolled back, {EXIT_INPUT} for keys that signed none of it or "
                                         "no log at --dir"),
            ("export", cmd_audit_export, "decrypt and select records, with their integrity")):
        command = audit.add_parser(name, parents=[parents["common"]], help=text)
        command.add_argument("--dir", help="the audit log folder (default: the audit_dir setting)")
        command.add_argument("--keys", required=True, help="the auditor's key folder")
        command.add_argument("--witness", type=Path, help="the witness file of the log's checkpoints (default: "
                                                          "witness.jsonl in --keys, where the gateway keeps it)")
        command.set_defaults(run=run)
    export = audit.choices["export"]
    export.add_argument("--from", dest="start", type=_utc_time, help="UTC date or time, inclusive")
    export.add_argument("--to", dest="end", type=_utc_time, help="UTC date or time, exclusive")
    export.add_argument("--camera", help="only this camera's records")
    export.add_argument("--nik", help="only records naming this NIK (asked for, or a candidate)")
    export.add_argument("--operation", help=f"only this operation: {', '.join(OPERATIONS)}")
    export.add_argument("--decision", help=f"only this decision: {', '.join(DECISIONS)}")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="default %(default)s")
    export.add_argument("--out", help="file to write (default: standard output)")


def _add_watchlists(sub: argparse._SubParsersAction, parents: dict[str, Parser]) -> None:
    watchlist = sub.add_parser("watchlist", help="watchlists beside the gallery, offline (a running gateway: the "
                                                 "Watchlists gRPC service)")
    watchlist = watchlist.add_subparsers(dest="action", required=True)
    where = "the gallery the lists belong to (default index/default)"
    create = watchlist.add_parser("create", parents=[parents["common"]], help="create a watchlist, audited")
    create.add_argument("name", help="1-64 letters, digits, '.', '_' or '-'")
    create.add_argument("--reason", required=True, help="why the list exists: the legal basis or case")
    create.add_argument("--owner", required=True, help="the agency that owns it")
    create.add_argument("--expires", help="when the whole list stops matching: an RFC 3339 date or time")
    choice = create.add_mutually_exclusive_group()
    choice.add_argument("--threshold", type=float, help="cosine similarity a face must reach (default: the identify "
                                                        "threshold)")
    choice.add_argument("--target-fpir", type=float, help="or the false-alert rate to choose it for, from the "
                                                          "recogniser's calibration data")
    create.add_argument("--expected-templates", type=int, default=0,
                        help="with --target-fpir: the templates the list will hold (default 1000)")
    create.add_argument("--priority", choices=("low", "normal", "high"), default="normal",
                        help="how urgently operators should look at its alerts (default %(default)s)")
    add = watchlist.add_parser("add", parents=[parents["common"]],
                               help="add a person from one or more photos (each through the enrolment gate)")
    add.add_argument("name", help="the watchlist")
    add.add_argument("--label", required=True, help="who the entry is, for the operator")
    add.add_argument("--case", help="the case reference (police report number)")
    add.add_argument("--expires", help="when the entry stops matching: an RFC 3339 date or time")
    add.add_argument("--photo", required=True, nargs="+", help="photos of the person (up to 16)")
    remove = watchlist.add_parser("remove", parents=[parents["common"]], help="remove an entry, audited")
    remove.add_argument("name", help="the watchlist")
    remove.add_argument("entry", help="the entry id (W and 15 hexadecimal digits)")
    show = watchlist.add_parser("show", parents=[parents["common"]], help="one list and what its threshold means")
    show.add_argument("name", help="the watchlist")
    listing = watchlist.add_parser("list", parents=[parents["common"]], help="every list")
    for command in (create, add, remove, show, listing):
        command.add_argument("--gallery", help=where)
        command.set_defaults(run=cmd_watchlist)


def build_parser() -> Parser:
    parser = Parser(prog="fr-gateway", description="Real-time face recognition gateway.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parents = _option_parsers()
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub, parents)
    _add_clients(sub, parents)
    _add_accuracy(sub, parents)
    _add_gallery(sub, parents)
    _add_watchlists(sub, parents)
    _add_certs(sub)
    _add_audit(sub, parents)
    _add_console(sub, parents)
    return parser


def _rpc_failure(exc: grpc.RpcError, args: argparse.Namespace) -> str:
    """What a failed call means for the person who made it; an unreachable gateway names what to check."""
    if exc.code() != grpc.StatusCode.UNAVAILABLE or not getattr(args, "target", None):
        return f"gateway answered {exc.code().name}: {exc.details()}"
    checks = "that a gateway runs there"
    if getattr(args, "cert", None):
        checks += (", that its certificate names the host you connect to and comes from the CA in --ca, and that "
                   "your certificate is its CA's, valid and of a role that may call this")
    return f"no answer from a gateway at {args.target} ({exc.details()}): check {checks}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)  # libraries speak only to warn
    try:
        return args.run(args)
    except GalleryModelMismatch as exc:
        log.error("refusing to serve: %s", exc)
        return EXIT_MODEL
    except CannotListen as exc:
        log.error("%s", exc)
        return EXIT_LISTEN
    except SearchUnavailable as exc:
        log.error("%s", exc)
        return EXIT_UNREACHABLE
    except GalleryRefused as exc:
        log.error("refusing to open the gallery: %s", exc)
        return EXIT_GALLERY
    except (WatchlistError, Problem) as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    except (FileNotFoundError, ValueError, OSError, KeyRingError, AuditKeyError, AuditUnavailable,
            CertificateError) as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    except grpc.RpcError as exc:
        log.error("%s", _rpc_failure(exc, args))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
