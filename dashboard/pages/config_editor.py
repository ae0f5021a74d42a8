"""Config page: edit the daemon's YAML config with the daemon's own validation, then tell it to reload.

Three tabs: a form for the workers (the rest of the file is kept byte for
byte), the raw YAML, and the saved versions with rollback. Every draft is
validated with `desk.config.parse_config_text` as it is typed; errors are
listed with their key paths, a valid draft shows a redacted diff and which
changed keys apply live or wait for a restart. Saving (and rolling back) needs
the operator password: `ConfigHistory` backs the file up and replaces it
atomically, then a `reload_config` command goes into the inbox so the running
daemon applies it and journals `ConfigChanged`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import streamlit as st
import yaml

from dashboard.auth import is_unlocked, operator_unlocked
from dashboard.config_form import WorkerDraft, format_problems, replace_workers_block, risk_overrides, to_flow_yaml
from dashboard.operator_actions import flash, show_flashes, submit_command
from dashboard.store_access import StoreLocation, database_display, location_or_stop
from desk.config import DeskConfig, parse_config_text
from desk.config_versions import (
    ConfigConflictError,
    ConfigHistory,
    SavedVersion,
    live_changes,
    redact_text,
    restart_required,
)
from desk.core.errors import ConfigError, DeskError
from desk.strategies.registry import available_slugs

_LOADED = "config_editor.loaded_generation"  # the file version this session's widgets were drawn from


def _validate(text: str) -> tuple[DeskConfig | None, list[str]]:
    """Return the config a draft describes, or the problems that stop it, one `key.path: message` each."""
    try:
        return parse_config_text(text), []
    except ConfigError as exc:
        names: dict[int, str] = {}
        try:  # name the workers in the messages when the draft is at least readable YAML
            data = yaml.safe_load(text)
            workers = data.get("workers") if isinstance(data, dict) else None
            if isinstance(workers, list):
                names = {i: str(w.get("name")) for i, w in enumerate(workers) if isinstance(w, dict) and "name" in w}
        except yaml.YAMLError:
            pass
        return None, format_problems(exc, names)


def _notify_daemon(target: StoreLocation, history: ConfigHistory, saved: SavedVersion, what: str) -> None:
    """Queue `reload_config` for a saved version and say what happened, including a failed queueing."""
    # Whatever happens next, the editor now stands on the saved text: no "changed on disk" warning for it.
    st.session_state[_LOADED] = _generation(history.current_text())
    if not saved.changed:
        flash("info", f"No change: version {saved.version} is already the config.")
        return
    # The resolved path of the file written: the daemon compares it with its own config's resolved path.
    payload = {"path": str(history.config_path), "version": saved.version, "diff": saved.diff}
    try:
        command_id = submit_command(target.database_url, target.journal_dir, "reload_config", payload)
    except (DeskError, ValueError, OSError) as exc:
        flash(
            "error",
            f"{what} as version {saved.version}, but the reload command could not be queued ({exc}). "
            "The daemon loads the file at its next start; or save again to retry.",
        )
        return
    flash("success", f"{what} as version {saved.version}; reload_config queued as command #{command_id}.")


def _save(target: StoreLocation, history: ConfigHistory, base_text: str, draft: str, what: str) -> None:
    """Save a draft (operator only), then rerun so every widget starts from the new file."""
    if not is_unlocked():  # the button is disabled too, but a crafted message must not get past this
        flash("error", "Unlock operator actions to save.")
        return
    try:
        saved = history.save(draft, expected_current=base_text)
    except ConfigError as exc:
        flash("error", "Not saved: " + "; ".join(format_problems(exc)))
    except (ConfigConflictError, OSError) as exc:  # OSError: a read-only config folder, a full disk
        flash("error", f"Not saved: {exc}")
    else:
        _notify_daemon(target, history, saved, what)
    st.rerun()


def _review(
    target: StoreLocation, history: ConfigHistory, base_text: str, current: DeskConfig | None, draft: str, key: str
) -> None:
    """Validate a draft, show its problems or its diff and effects, and offer Save."""
    if draft == base_text:
        st.caption("No changes yet.")
        return
    config, problems = _validate(draft)
    if problems:
        st.error("The draft is not valid; nothing can be saved until these are fixed:\n\n" + _bullets(problems))
        return
    assert config is not None
    st.markdown("**Diff preview** (secret-looking values redacted)")
    st.code(history.diff(base_text, draft) or "(no textual change)", language="diff")
    if current is not None:
        restart, live = restart_required(current, config), live_changes(current, config)
        if live:
            st.info("Applied live by the running daemon:\n\n" + _bullets(live))
        if restart:
            st.warning("Take effect only after a daemon restart:\n\n" + _bullets(restart))
    unlocked = is_unlocked()
    if st.button("Save and reload", key=f"{key}.save", type="primary", disabled=not unlocked):
        _save(target, history, base_text, draft, "Saved")
    if not unlocked:
        st.caption("Saving needs the operator password (sidebar).")


def _bullets(items: list[str]) -> str:
    # Code spans keep key paths like `workers[2].params.slow` (and typed values quoted in messages) from being
    # read as Markdown; a backtick inside would end the span early.
    return "\n".join("- `" + item.replace("`", "'") + "`" for item in items)


def _generation(text: str) -> str:
    """Name one version of the file's text; widget keys carry it, so a new file means fresh widgets."""
    return "cfg." + hashlib.sha256(text.encode()).hexdigest()[:12]


def _worker_fields(prefix: str, draft: WorkerDraft, symbols: list[str], slugs: list[str]) -> WorkerDraft | None:
    """Draw one worker's fields; return the edited draft, or None when it is marked for removal."""
    left, right = st.columns(2)
    name = left.text_input("Name", value=draft.name, key=f"{prefix}.name")
    symbol_options = symbols if draft.symbol in symbols or not draft.symbol else [*symbols, draft.symbol]
    symbol = right.selectbox(
        "Symbol", symbol_options, index=symbol_options.index(draft.symbol) if draft.symbol else 0, key=f"{prefix}.sym"
    )
    slug_options = slugs if draft.strategy in slugs or not draft.strategy else [*slugs, draft.strategy]
    strategy = left.selectbox(
        "Strategy",
        slug_options,
        index=slug_options.index(draft.strategy) if draft.strategy else 0,
        key=f"{prefix}.strategy",
    )
    weight = right.number_input("Weight", value=float(draft.weight), step=0.1, key=f"{prefix}.weight")
    enabled = left.checkbox("Enabled", value=draft.enabled, key=f"{prefix}.enabled")
    remove = right.checkbox("Remove this worker", value=False, key=f"{prefix}.remove")
    params_text = _mapping_field("Params (YAML or JSON mapping)", draft.params_text, f"{prefix}.params")
    risk_text = _mapping_field(
        "Risk overrides (risk_per_trade_usd, risk_per_trade_pct, stop_pct, take_profit_r, trailing_stop_pct)",
        draft.risk_text,
        f"{prefix}.risk",
    )
    if remove:
        return None
    return WorkerDraft(name, symbol or "", strategy or "", weight, enabled, params_text, risk_text)


def _mapping_field(label: str, text: str, key: str) -> str:
    """A text area for a mapping; read-only (and redacted) if the text holds anything secret-looking."""
    shown = redact_text(text)
    if shown != text:
        st.text_area(label, value=shown, key=f"{key}.redacted", disabled=True, help="Holds a secret-looking value.")
        return text  # the form keeps the file's value and never writes the redacted one
    return st.text_area(label, value=text, key=key, height=68) or ""


def _workers_tab(
    target: StoreLocation, history: ConfigHistory, base_text: str, current: DeskConfig, generation: str
) -> None:
    """Form editing of the workers; only the `workers:` block of the file is rewritten."""
    raw = yaml.safe_load(base_text) or {}
    raw_workers = raw.get("workers", []) if isinstance(raw, dict) else []
    symbols, slugs = list(current.feed.symbols), available_slugs()
    added_key = f"{generation}.added"
    added = st.session_state.get(added_key, 0)
    drafts: list[tuple[WorkerDraft, frozenset[str]]] = []
    for index, worker in enumerate(current.workers):
        label = f"{worker.name} · {worker.symbol} · {worker.strategy}" + ("" if worker.enabled else " (disabled)")
        original = WorkerDraft(
            worker.name,
            worker.symbol,
            worker.strategy,
            worker.weight,
            worker.enabled,
            to_flow_yaml(worker.params),
            to_flow_yaml(risk_overrides(current, index)),
        )
        explicit = raw_workers[index] if index < len(raw_workers) and isinstance(raw_workers[index], dict) else {}
        with st.expander(label):
            edited = _worker_fields(f"{generation}.w{index}", original, symbols, slugs)
        if edited is not None:
            drafts.append((edited, frozenset(explicit)))
    for slot in range(added):
        with st.expander(f"New worker {slot + 1}", expanded=True):
            blank = WorkerDraft("", symbols[0], slugs[0] if slugs else "", 1.0, True, "{}", "{}")
            edited = _worker_fields(f"{generation}.new{slot}", blank, symbols, slugs)
        if edited is not None:
            drafts.append((edited, frozenset()))
    unlocked = is_unlocked()
    st.button(
        "Add a worker", key=f"{generation}.add", on_click=_add_worker_slot, args=(added_key,), disabled=not unlocked
    )
    if not unlocked:
        st.caption("Adding a worker needs the operator password (sidebar).")

    workers = [draft.to_data(i, explicit) for i, (draft, explicit) in enumerate(drafts)]
    problems = [problem for draft, _ in drafts for problem in draft.problems]
    if problems:
        lines = [redact_text(f"{path}: {message}") for path, message in problems]
        st.error("The draft is not valid; nothing can be saved until these are fixed:\n\n" + _bullets(lines))
        return
    draft_text = replace_workers_block(base_text, workers)
    if _same_config(draft_text, current):
        draft_text = base_text  # only formatting would change: not worth a version
    _review(target, history, base_text, current, draft_text, f"{generation}.form")


def _add_worker_slot(added_key: str) -> None:
    if not is_unlocked():  # the button is disabled when locked; a crafted message must not get past that either
        flash("error", "Unlock operator actions to add a worker.")
        return
    st.session_state[added_key] = st.session_state.get(added_key, 0) + 1


def _same_config(text: str, config: DeskConfig) -> bool:
    try:
        return parse_config_text(text) == config
    except ConfigError:
        return False


def _raw_tab(
    target: StoreLocation, history: ConfigHistory, base_text: str, current: DeskConfig | None, generation: str
) -> None:
    """The whole file as YAML; read-only when it holds anything secret-looking."""
    shown = redact_text(base_text)
    if shown != base_text:
        st.warning(
            "The file holds a secret-looking value (a credential in a URL, say), so it is shown redacted and "
            "cannot be edited here. Move the secret to an environment variable, or edit the workers in the form."
        )
        st.code(shown, language="yaml")
        return
    draft = st.text_area("config YAML", value=base_text, height=480, key=f"{generation}.raw") or ""
    _review(target, history, base_text, current, draft, f"{generation}.rawtab")


def _versions_tab(target: StoreLocation, history: ConfigHistory, base_text: str) -> None:
    """List saved versions; preview and roll back to one (operator only)."""
    versions = history.versions()
    if not versions:
        st.caption(
            f"No saved versions yet. The first save keeps the current file as version 1 in {history.history_dir}."
        )
        return
    current_version = history.current_version()
    st.dataframe(
        [
            {
                "version": info.version,
                "saved (UTC)": datetime.fromtimestamp(info.saved_wall_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "bytes": info.size_bytes,
                "current": "yes" if info.version == current_version else "",
            }
            for info in reversed(versions)
        ],
        hide_index=True,
    )
    choices = [info.version for info in reversed(versions)]
    version = st.selectbox("Version", choices, key="config_versions.pick")
    if version is None:
        return
    text = history.read(version)
    with st.expander(f"Version {version} as saved"):
        st.code(redact_text(text), language="yaml")
    if version == current_version or text == base_text:
        st.caption(f"Version {version} is the current config.")
        return
    st.markdown(f"**Rolling back to version {version} changes the current file like this:**")
    st.code(history.diff(base_text, text), language="diff")
    unlocked = is_unlocked()
    if st.button(f"Roll back to version {version}", key="config_versions.rollback", disabled=not unlocked):
        _rollback(target, history, version)
    if not unlocked:
        st.caption("Rolling back needs the operator password (sidebar).")


def _rollback(target: StoreLocation, history: ConfigHistory, version: int) -> None:
    if not is_unlocked():
        flash("error", "Unlock operator actions to roll back.")
        return
    try:
        saved = history.rollback(version)
    except ConfigError as exc:  # an old version may not satisfy today's models
        flash("error", f"Version {version} is not valid today, not restored: " + "; ".join(format_problems(exc)))
    except (ConfigConflictError, KeyError, OSError) as exc:
        flash("error", f"Not restored: {exc}")
    else:
        _notify_daemon(target, history, saved, f"Restored version {version}")
    st.rerun()


def main() -> None:
    """Render the page."""
    st.title("Config")
    operator_unlocked()
    show_flashes()
    target = location_or_stop()
    if target.config_path is None:
        st.info("The control room was started on a store folder without a config file, so there is nothing to edit.")
        return
    history = ConfigHistory(target.config_path)
    st.caption(
        f"Editing `{history.config_path}` · versions kept in `{history.history_dir}` · "
        f"reload commands go to `{database_display(target.database_url)}`"
    )
    base_text = history.current_text()
    current, problems = _validate(base_text)
    if problems:
        st.error("The file on disk is not valid (fix it in the Raw YAML tab):\n\n" + _bullets(problems))
    # Widget keys carry a digest of the file: after a save every field starts from the new text, and a draft
    # made against an older file can never be saved over a newer one.
    generation = _generation(base_text)
    if st.session_state.get(_LOADED, generation) != generation:
        st.warning(
            "The config file changed on disk since this page loaded it (another session or a hand edit). "
            "The editor now shows the new file; unsaved edits made against the old one were dropped."
        )
    st.session_state[_LOADED] = generation
    workers_tab, raw_tab, versions_tab = st.tabs(["Workers", "Raw YAML", "Versions"])
    with workers_tab:
        if current is None:
            st.caption("The form needs a valid file; use the Raw YAML tab.")
        else:
            _workers_tab(target, history, base_text, current, generation)
    with raw_tab:
        _raw_tab(target, history, base_text, current, generation)
    with versions_tab:
        _versions_tab(target, history, base_text)


main()
