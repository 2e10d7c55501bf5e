"""How the CLI finds the controller's API and its token, first that applies:

1. $DAOLINET_API (token: $DAOLINET_TOKEN, else the config file's token when
   the config file names no other API);
2. $DAOLINET_LAB: that lab's API (token: $DAOLINET_TOKEN, else the lab's admin token);
3. the config file, $DAOLINET_CONFIG or ~/.config/daolinet/config.json:
   {"api": URL, "token": TOKEN} (token: $DAOLINET_TOKEN, else the file's);
4. the only running lab (token: $DAOLINET_TOKEN, else the lab's admin token).

A token is only ever sent to the API it came with."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from daolinet.errors import InvalidInput, NotFound, SystemFailure, Unauthorized
from daolinet.lab import cluster
from daolinet.lab.client import LabClient


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None
    url_from: str  # where the URL came from, for messages
    token_from: str | None
    lab: str | None = None  # the lab whose API this is


def config_path() -> str:
    explicit = os.environ.get("DAOLINET_CONFIG")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "daolinet", "config.json")


def load_config() -> dict[str, str]:
    """The config file's {"api", "token"}; {} when there is none (an explicit
    $DAOLINET_CONFIG must exist)."""
    path = config_path()
    try:
        with open(path) as f:
            data: Any = json.load(f)
    except FileNotFoundError:
        if os.environ.get("DAOLINET_CONFIG"):
            raise NotFound(f"config file {path} (from $DAOLINET_CONFIG) not found") from None
        return {}
    except ValueError as e:
        raise InvalidInput(f"config file {path} is not valid JSON: {e}") from None
    except OSError as e:
        raise SystemFailure(f"cannot read config file {path}: {e.strerror or e}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"config file {path} must hold a JSON object like "
                           '{"api": "http://HOST:PORT", "token": "TOKEN"}')
    unknown = sorted(set(data) - {"api", "token"})
    if unknown:
        raise InvalidInput(f"config file {path}: unknown key(s) {', '.join(unknown)} (known: api, token)")
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"config file {path}: {key} must be a non-empty string")
    return {k: v.strip() for k, v in data.items()}


def _check_url(url: str, where: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"API URL {url!r} ({where}) must start with http:// or https://")
    return url.rstrip("/")


def running_labs() -> list[str]:
    """Labs that run a controller."""
    try:
        names = cluster.list_labs()
    except Exception:  # no permission to look: as good as none
        return []
    return [n for n in names if _has_api(n)]


def _has_api(name: str) -> bool:
    try:
        return cluster.Lab.open(name).has_controller
    except Exception:
        return False


def _lab_target(name: str, url_from: str, env_token: str | None) -> Target:
    lab = cluster.Lab.open(name)
    url = lab.api_url
    if env_token:
        return Target(url, env_token, url_from, "$DAOLINET_TOKEN", name)
    try:
        token = lab.admin_token
    except OSError as e:
        raise SystemFailure(f"cannot read the admin token of lab {name}: {e.strerror or e} "
                            "(set DAOLINET_TOKEN)") from None
    return Target(url, token, url_from, f"lab {name}'s admin token", name)


def target() -> Target:
    env_token = os.environ.get("DAOLINET_TOKEN", "").strip() or None
    url = os.environ.get("DAOLINET_API", "").strip()
    if url:
        url = _check_url(url, "from $DAOLINET_API")
        if env_token:
            return Target(url, env_token, "$DAOLINET_API", "$DAOLINET_TOKEN")
        cfg = load_config()
        same = "api" not in cfg or cfg["api"].rstrip("/") == url
        token = cfg.get("token") if same else None
        return Target(url, token, "$DAOLINET_API", config_path() if token else None)
    name = os.environ.get("DAOLINET_LAB", "").strip()
    if name:
        return _lab_target(name, "$DAOLINET_LAB", env_token)
    cfg = load_config()
    if "api" in cfg:
        url = _check_url(cfg["api"], f"from {config_path()}")
        token = env_token or cfg.get("token")
        return Target(url, token, config_path(),
                      "$DAOLINET_TOKEN" if env_token else (config_path() if token else None))
    running = running_labs()
    if len(running) == 1:
        return _lab_target(running[0], f"lab {running[0]}", env_token)
    if not running:
        raise NotFound(f"no controller API: set DAOLINET_API=http://HOST:PORT, write {config_path()}, "
                       "or start a lab")
    raise NotFound(f"several labs run ({', '.join(running)}): set DAOLINET_LAB or DAOLINET_API")


def api_url() -> str:
    return target().url


def api_token() -> str | None:
    return target().token


class ApiClient(LabClient):
    """A LabClient whose errors say where the API and the token came from."""

    def __init__(self, t: Target) -> None:
        super().__init__(t.url, token=t.token)
        self.target = t

    def __enter__(self) -> ApiClient:
        return self

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return super().call(method, path, **kwargs)
        except Unauthorized as e:
            raise Unauthorized(f"{e} (token from {self.target.token_from}, API {self.target.url})") from None
        except ValueError as e:  # 2xx without JSON: not a daolinet API
            raise SystemFailure(f"{self.target.url} (from {self.target.url_from}) answered {method} {path} "
                                f"without JSON: is it a daolinet controller?") from e


def api_client() -> ApiClient:
    t = target()
    if t.token is None:
        raise Unauthorized(f"no API token for {t.url} (from {t.url_from}): set DAOLINET_TOKEN or "
                           f'"token" in {config_path()}')
    return ApiClient(t)


def lab_of(t: Target) -> cluster.Lab | None:
    """The running lab whose controller is the API in use (for live OVS traces), or None."""
    name = t.lab or os.environ.get("DAOLINET_LAB", "").strip() or None
    if name is None:
        running = running_labs()
        name = running[0] if len(running) == 1 else None
    if name is None:
        return None
    try:
        lab = cluster.Lab.open(name)
        if not lab.has_controller or lab.api_url.rstrip("/") != t.url.rstrip("/"):
            return None
    except Exception:
        return None
    return lab
