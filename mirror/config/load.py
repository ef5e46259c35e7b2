"""Load `mirror.yaml` and the whitelist, reporting errors with file, line and key.

YAML is read with ruamel's round-trip loader because it keeps the line of
every key and list item, so a schema error can point at the exact spot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from mirror.config.schema import MirrorConfig, WhitelistEntry
from mirror.errors import ConfigError
from mirror.selection.specs import InvalidSpecError, parse_spec


def load_config(path: str | os.PathLike[str]) -> MirrorConfig:
    """Read and check `mirror.yaml`; relative paths are taken from its folder."""
    source = Path(path).resolve()
    document = _read_yaml(source, "create it, or name it with --config or $MIRROR_CONFIG")
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the file must contain a mapping of settings, such as 'upstreams:'")

    try:
        config = MirrorConfig.model_validate(dict(document))
    except ValidationError as exc:
        raise _schema_error(source, document, exc) from None

    base = source.parent
    return config.model_copy(
        update={
            "data_dir": _absolute(base, config.data_dir),
            "whitelist": _absolute(base, config.whitelist),
            "database": _absolute_sqlite_url(base, config.database),
            "upstreams": {
                name: upstream.model_copy(
                    update={"ca_bundle": _absolute(base, upstream.ca_bundle) if upstream.ca_bundle else None}
                )
                for name, upstream in config.upstreams.items()
            },
            "validation": config.validation.model_copy(
                update={
                    "yara_rules_dir": _absolute(base, config.validation.yara_rules_dir)
                    if config.validation.yara_rules_dir else None
                }
            ),
            "auth": _absolute_auth_paths(base, config.auth),
            "notifications": _absolute_smtp_paths(base, config.notifications),
            "source": source,
        }
    )


def load_whitelist(config: MirrorConfig, path: Path | None = None) -> list[WhitelistEntry]:
    """Read the whitelist named by `config` and check it against the configured names."""
    source = (path or config.whitelist).resolve()
    document = _read_yaml(source, f"create it, or set 'whitelist:' in {config.source or 'mirror.yaml'} to its path")
    if document is None:
        return []
    if not isinstance(document, list):
        raise ConfigError(
            f"{source}: the whitelist must be a list of entries, each starting with '- upstream: NAME'"
        )

    entries: list[WhitelistEntry] = []
    problems: list[str] = []
    for index, item in enumerate(document):
        try:
            entry = WhitelistEntry.model_validate(dict(item) if isinstance(item, dict) else item)
        except ValidationError as exc:
            problems.extend(_describe_errors(source, document, exc, prefix=(index,)))
            continue
        problems.extend(_check_entry(source, document, index, entry, config))
        entries.append(entry)

    if problems:
        raise ConfigError("\n".join(problems))
    return entries


def _check_entry(
    source: Path, document: Any, index: int, entry: WhitelistEntry, config: MirrorConfig
) -> list[str]:
    problems = []

    if entry.upstream not in config.upstreams:
        known = ", ".join(sorted(config.upstreams))
        problems.append(
            _at(source, document, (index, "upstream"))
            + f"unknown upstream {entry.upstream!r}; define it under 'upstreams:' in "
            f"{config.source or 'mirror.yaml'} or use one of: {known}"
        )
    if entry.channel not in config.channels:
        known = ", ".join(sorted(config.channels))
        problems.append(
            _at(source, document, (index, "channel"))
            + f"unknown channel {entry.channel!r}; define it under 'channels:' or use one of: {known}"
        )

    upstream = config.upstreams.get(entry.upstream)
    if upstream and entry.subdirs:
        for position, subdir in enumerate(entry.subdirs):
            if subdir not in upstream.subdirs:
                problems.append(
                    _at(source, document, (index, "subdirs", position))
                    + f"subdir {subdir!r} is not synced from upstream {entry.upstream!r}; "
                    f"add it to that upstream's subdirs ({', '.join(upstream.subdirs)})"
                )

    for key in ("packages", "exclude"):
        for position, text in enumerate(getattr(entry, key)):
            try:
                parse_spec(text)
            except InvalidSpecError as exc:
                problems.append(
                    _at(source, document, (index, key, position))
                    + f"invalid match spec {text!r}: {exc}. "
                    "Write conda match specs such as 'numpy >=1.26,<2' or 'python 3.11.* *_cpython'"
                )
    return problems


def _read_yaml(source: Path, missing_hint: str) -> Any:
    if not source.is_file():
        raise ConfigError(f"{source}: file not found; {missing_hint}")
    yaml = YAML(typ="rt")
    try:
        with source.open("r", encoding="utf-8") as stream:
            return yaml.load(stream)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem}; fix the syntax at that line") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: the file is not UTF-8 text") from None


def _schema_error(source: Path, document: Any, exc: ValidationError) -> ConfigError:
    return ConfigError("\n".join(_describe_errors(source, document, exc)))


def _describe_errors(source: Path, document: Any, exc: ValidationError, prefix: tuple = ()) -> list[str]:
    messages = []
    for error in exc.errors():
        location = prefix + tuple(error["loc"])
        key = ".".join(str(part) for part in location) or "(top level)"
        kind = error["type"]
        if kind == "extra_forbidden":
            detail = f"unknown key {location[-1]!r}; check its spelling against docs/configuration.md"
        elif kind == "missing":
            detail = f"required key {location[-1]!r} is missing"
        else:
            value = error.get("input")
            shown = f" (value {value!r})" if not isinstance(value, (dict, list)) else ""
            detail = f"{error['msg']}{shown}"
        messages.append(f"{_at(source, document, location)}{key}: {detail}")
    return messages


def _at(source: Path, document: Any, location: tuple) -> str:
    line = _line_of(document, location)
    return f"{source}:{line}: " if line else f"{source}: "


def _line_of(document: Any, location: tuple) -> int | None:
    """Return the 1-based line of the deepest node of `location` that exists in the YAML."""
    node = document
    line = None
    for part in location:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            if isinstance(node, (CommentedMap, CommentedSeq)) and line is None:
                line = node.lc.line + 1
            break
    return line


def _absolute_auth_paths(base: Path, auth):
    ldap = auth.ldap
    if ldap is not None:
        ldap = ldap.model_copy(update={
            key: _absolute(base, getattr(ldap, key))
            for key in ("ca_file", "bind_password_file")
            if getattr(ldap, key) is not None
        })
    users_file = _absolute(base, auth.users_file) if auth.users_file else None
    return auth.model_copy(update={"ldap": ldap, "users_file": users_file})


def _absolute_smtp_paths(base: Path, notifications):
    smtp = notifications.smtp
    if smtp is None or smtp.ca_bundle is None:
        return notifications
    return notifications.model_copy(update={"smtp": smtp.model_copy(update={"ca_bundle": _absolute(base, smtp.ca_bundle)})})


def _absolute(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def _absolute_sqlite_url(base: Path, url: str) -> str:
    """Anchor a relative SQLite path at the config folder, like every other path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or url == prefix + ":memory:":
        return url
    return prefix + str(_absolute(base, Path(url[len(prefix):])))
