"""How the CLI finds the controllers' API and its token, first that applies:

1. $DAOLINET_API, one URL or several comma-separated (token: $DAOLINET_TOKEN, else
   the config file's token when the config file names the same API);
2. $DAOLINET_LAB: that lab's controllers (token: $DAOLINET_TOKEN, else the lab's admin token);
3. the config file, $DAOLINET_CONFIG or ~/.config/daolinet/config.json:
   {"api": URL or [URL, ...], "token": TOKEN, "ca": PATH, "cert": PATH, "key": PATH}
   (token: $DAOLINET_TOKEN, else the file's);
4. the only running lab (token: $DAOLINET_TOKEN, else the lab's admin token).

With several controllers a request that cannot connect goes to the next one
(lab/client.py); one that reached a controller is never repeated elsewhere.  The
controller that answered is remembered in the user's cache dir
($XDG_CACHE_HOME/daolinet/api-last.json), per list of URLs, so the next command
starts with a live one instead of waiting on a dead one's connect timeout: a lab's
run dir would do for a lab, but not for $DAOLINET_API or the config file, and one
place for all is simpler.  The file is a hint only: a missing, torn or unwritable
one costs one connect attempt, never a failure.

An https API is verified against the installation's CA ($DAOLINET_CA, else the
config file's "ca"; a lab's own CA for a lab), never not verified; a client
certificate ($DAOLINET_CERT and $DAOLINET_KEY, else the file's "cert" and "key";
a lab's admin user certificate) is offered when there is one, and then serves
without a token: a request with a token acts as the token, one without as the
certificate's holder.  A secure lab needs no token: its certificate is enough.
A token, or the file's TLS files, are only ever used with the API they came with."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daolinet.agent.failover import parse_urls
from daolinet.errors import DaoliError, InvalidInput, NotFound, SystemFailure, Unauthorized
from daolinet.lab import cluster, daemons
from daolinet.lab.client import Endpoint, LabClient
from daolinet.security.tls import TlsFiles

CONFIG_KEYS = ("api", "token", "ca", "cert", "key")
TLS_KEYS = ("ca", "cert", "key")


@dataclass(frozen=True)
class Target:
    endpoints: tuple[Endpoint, ...]  # the controllers' APIs, in order (a lab's: with their sockets)
    token: str | None
    url_from: str  # where the URLs came from, for messages
    token_from: str | None
    lab: str | None = None  # the lab whose API this is
    tls: TlsFiles | None = None  # the CA to verify an https API with, and our pair to offer
    tls_from: str | None = None

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(e.url for e in self.endpoints)

    @property
    def url(self) -> str:
        """The URLs, for messages."""
        return ", ".join(self.urls)

    @property
    def credential(self) -> str | None:
        """Where the credential the requests carry comes from (None: they carry none)."""
        if self.token is not None:
            return f"token from {self.token_from}"
        if self.tls is not None and self.tls.cert:
            return f"certificate {self.tls.cert} from {self.tls_from}"
        return None


def config_path() -> str:
    explicit = os.environ.get("DAOLINET_CONFIG")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "daolinet", "config.json")


def load_config() -> dict[str, str]:
    """The config file's {"api", "token", "ca", "cert", "key"}, "api" as URLs comma-separated
    (the file may give a list); {} when there is none (an explicit $DAOLINET_CONFIG must exist)."""
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
    return _checked_config(path, data)


def _checked_config(path: str, data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise InvalidInput(f"config file {path} must hold a JSON object like "
                           '{"api": "http://HOST:PORT", "token": "TOKEN"}')
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise InvalidInput(f"config file {path}: unknown key(s) {', '.join(unknown)} "
                           f"(known: {', '.join(CONFIG_KEYS)})")
    if isinstance(data.get("api"), list):
        if not data["api"] or not all(isinstance(u, str) and u.strip() for u in data["api"]):
            raise InvalidInput(f"config file {path}: api must be a URL or a non-empty list of URLs")
        data["api"] = ",".join(data["api"])
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"config file {path}: {key} must be a non-empty string")
    return {k: v.strip() for k, v in data.items()}


def check_urls(value: str, where: str) -> tuple[str, ...]:
    """Comma-separated API URLs (agent/failover.py's parser, the agent's --api)."""
    try:
        urls = parse_urls([value])
    except InvalidInput as e:
        raise InvalidInput(f"{e} ({where})") from None
    if not urls:
        raise InvalidInput(f"no API URL ({where})")
    return urls


# A lab whose state cannot be looked at or read (gone, no permission, a half-written file)
# counts as no lab here.
UNREADABLE_LAB = (DaoliError, OSError, ValueError, KeyError, TypeError)


def running_labs() -> list[str]:
    """Labs that run a controller."""
    try:
        names = cluster.list_labs()
    except UNREADABLE_LAB:  # no permission to look: as good as none
        return []
    return [n for n in names if _has_api(n)]


def pick_lab(given: str | None, env: str | None, labs: Sequence[str]) -> str:
    """Which lab a `daolinet lab` command means: --name, else $DAOLINET_LAB, else the only
    lab there is (as the API is found: cli/api.py's `target`); several: say which."""
    if given:
        return given
    if env:
        return env
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise NotFound("no lab runs: start one with: daolinet lab up (or give --name)")
    raise NotFound(f"several labs run ({', '.join(labs)}): give --name or set DAOLINET_LAB")


def lab_name(given: str | None, *, broken_too: bool = False) -> str:
    """`pick_lab` over the labs that can be opened (`broken_too`: every lab with a trace left,
    for `lab down`)."""
    env = os.environ.get("DAOLINET_LAB", "").strip() or None
    if given or env:
        return pick_lab(given, env, ())
    try:
        names = cluster.list_labs()
    except UNREADABLE_LAB:
        names = []
    return pick_lab(None, None, names if broken_too else [n for n in names if lab_opens(n)])


def lab_opens(name: str) -> bool:
    try:
        cluster.Lab.open(name)
    except UNREADABLE_LAB:
        return False
    return True


def _has_api(name: str) -> bool:
    try:
        return cluster.Lab.open(name).has_controller
    except UNREADABLE_LAB:
        return False


def _env_tls() -> dict[str, str]:
    """$DAOLINET_CA, $DAOLINET_CERT, $DAOLINET_KEY, as far as they are set."""
    found = {k: os.environ.get(f"DAOLINET_{k.upper()}", "").strip() for k in TLS_KEYS}
    return {k: v for k, v in found.items() if v}


def tls_of(urls: Sequence[str], env: dict[str, str], base: dict[str, str],
           base_from: str | None) -> tuple[TlsFiles | None, str | None]:
    """The TLS files for `urls` and where they came from: per file the environment's, else
    `base`'s (the config file's, or a lab's).  None when no URL is https://, and for https
    with no CA given (then verified against the system's trust store)."""
    merged = {**base, **env}
    https = [u for u in urls if u.startswith("https://")]
    if not https or not merged:
        return None, None
    sources = [f"$DAOLINET_{k.upper()}" for k in env] + ([base_from or "?"] if base else [])
    source = ", ".join(sources)
    if ("cert" in merged) != ("key" in merged):
        raise InvalidInput(f"a client certificate and its key go together: give both cert and key ({source})")
    if "ca" not in merged:
        raise InvalidInput(f"a client certificate needs the installation's CA to verify {https[0]} with: "
                           f"give ca too ({source})")
    return TlsFiles(merged["ca"], merged.get("cert"), merged.get("key")), source


def lab_endpoints(lab: Any) -> tuple[Endpoint, ...]:
    """Every controller of `lab`, each through its unix socket (the root namespace has no
    address on the lab's underlay; a dead controller's socket refuses, or is gone)."""
    urls: list[str] = list(getattr(lab, "api_urls", None) or [lab.api_url])
    return tuple(Endpoint(url, daemons.ControllerPaths(lab.name, i).api_sock) for i, url in enumerate(urls))


def _lab_target(name: str, url_from: str, env_token: str | None) -> Target:
    lab = cluster.Lab.open(name)
    endpoints = lab_endpoints(lab)
    files: TlsFiles | None = getattr(lab, "api_tls", None)  # None: an --insecure lab
    own = {} if files is None else \
        {k: v for k, v in (("ca", files.ca), ("cert", files.cert), ("key", files.key)) if v}
    tls, tls_from = tls_of([e.url for e in endpoints], _env_tls(), own, f"lab {name}")
    where = Target(endpoints, None, url_from, None, name, tls, tls_from)
    if env_token:
        return dataclasses.replace(where, token=env_token, token_from="$DAOLINET_TOKEN")
    if tls is not None and tls.cert:
        return where  # the lab's admin certificate is the credential
    try:
        token = lab.admin_token
    except OSError as e:
        raise SystemFailure(f"cannot read the admin token of lab {name}: {e.strerror or e} "
                            "(set DAOLINET_TOKEN)") from None
    return dataclasses.replace(where, token=token, token_from=f"lab {name}'s admin token")


def _file_target(urls: tuple[str, ...], url_from: str, env_token: str | None, cfg: dict[str, str]) -> Target:
    """`urls`, with the config file's token and TLS files if they are `urls`' (`cfg`: {} if not)."""
    token = env_token or cfg.get("token")
    token_from = "$DAOLINET_TOKEN" if env_token else (config_path() if token else None)
    tls, tls_from = tls_of(urls, _env_tls(), {k: cfg[k] for k in TLS_KEYS if k in cfg}, config_path())
    return Target(tuple(Endpoint(u) for u in urls), token, url_from, token_from, tls=tls, tls_from=tls_from)


def target() -> Target:
    env_token = os.environ.get("DAOLINET_TOKEN", "").strip() or None
    value = os.environ.get("DAOLINET_API", "").strip()
    if value:
        urls = check_urls(value, "from $DAOLINET_API")
        cfg = load_config()
        same = "api" not in cfg or set(check_urls(cfg["api"], f"from {config_path()}")) == set(urls)
        return _file_target(urls, "$DAOLINET_API", env_token, cfg if same else {})
    name = os.environ.get("DAOLINET_LAB", "").strip()
    if name:
        return _lab_target(name, "$DAOLINET_LAB", env_token)
    cfg = load_config()
    if "api" in cfg:
        return _file_target(check_urls(cfg["api"], f"from {config_path()}"), config_path(), env_token, cfg)
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


# -- the controller that answered last (see the module's docstring) ---------------------------


def last_used_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "daolinet", "api-last.json")


def _last_used() -> dict[str, str]:
    try:
        with open(last_used_path()) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def remembered(urls: Sequence[str]) -> str | None:
    """The URL of `urls` that answered last, if it is one of them."""
    found = _last_used().get(",".join(urls))
    return found if found in urls else None


def remember(urls: Sequence[str], url: str) -> None:
    """`url` of `urls` answered: the next command starts there (written only on a change)."""
    if len(urls) < 2 or remembered(urls) == url:
        return
    path = last_used_path()
    data = {**_last_used(), ",".join(urls): url}
    with contextlib.suppress(OSError):  # a hint only (see the module's docstring)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)


class ApiClient(LabClient):
    """A LabClient over the target's controllers whose errors say where the API and the
    credential came from; it starts with the controller that answered last time."""

    def __init__(self, t: Target, transport: Any = None) -> None:
        super().__init__(list(t.endpoints), token=t.token, tls=t.tls, start=remembered(t.urls),
                         transport=transport)
        self.target = t

    def __enter__(self) -> ApiClient:
        return self

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return super().call(method, path, **kwargs)
        except Unauthorized as e:
            raise Unauthorized(f"{e} ({self.target.credential or 'no credential'}, "
                               f"API {self.url})") from None
        except ValueError as e:  # 2xx without JSON: not a daolinet API
            raise SystemFailure(f"{self.url} (from {self.target.url_from}) answered {method} {path} "
                                f"without JSON: is it a daolinet controller?") from e
        finally:
            remember(self.target.urls, self.url)


def api_client() -> ApiClient:
    t = target()
    if t.credential is None:
        cert = " (or a client certificate: DAOLINET_CERT, DAOLINET_KEY)" if "https:" in t.url else ""
        raise Unauthorized(f"no API token for {t.url} (from {t.url_from}): set DAOLINET_TOKEN or "
                           f'"token" in {config_path()}{cert}')
    return ApiClient(t)
