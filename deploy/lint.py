#!/usr/bin/env python3
"""Checks the deploy artefacts against each other and against the code, without a network.

Run through deploy/lint.sh (which finds a Python with PyYAML). What it checks:

- every YAML file under deploy/ parses;
- every `keryu …` command (Dockerfile CMD, compose `command:`, Kubernetes `args:`, commands in
  docs/operations.md) names a subcommand and flags that cli/src really declares (read from the
  clap derive code, not from a built binary), and projection names that cli/src/projections.rs
  knows;
- every environment key given to a Keryu container (Dockerfile ENV, compose env files and
  `environment:`, Kubernetes ConfigMap, Secret and `env:`), and every key docs/operations.md
  names, is one the code reads (infra/src/config.rs and friends, clap `env =`, `env::var`) or a
  standard one listed in STANDARD_KEYS below;
- the Dockerfile: a non-root USER in the final stage, ENTRYPOINT ["keryu"], EXPOSE matching
  KERYU_HTTP_ADDR, a builder Rust at least the workspace's rust-version, COPY sources present;
- compose: the services the operations issue asks for, healthchecks on /healthz or /readyz for
  every long-running role, existing depends_on targets, env files and mounted files, the load
  balancer's upstream, the collector's pipelines;
- the shell scripts under deploy/ pass `bash -n` (and shellcheck, when installed), and
  deploy/k8s renders with `kubectl kustomize` when kubectl is installed;
- Kubernetes: kustomization resources exist (and no manifest is forgotten), liveness probes on
  /healthz and readiness probes on /readyz at a declared port, non-root and read-only root
  filesystems, resource requests and limits, a migration Job, selectors and backends that match,
  secrets kept out of the ConfigMap.

Exits 1 listing every problem, 0 otherwise.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCS = ROOT / "docs" / "operations.md"

# Keys Keryu containers may be given that are not read through Keryu's own config code:
# the OpenTelemetry SDK's standard variables, and the log keys of the observability issue.
STANDARD_KEYS = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "KERYU_LOG",
    "KERYU_LOG_FORMAT",
}
# Keys that hold secrets: they belong in the Kubernetes Secret, never in the ConfigMap.
SECRET_KEYS = {
    "DATABASE_URL",
    "KERYU_JWT_SECRET",
    "KERYU_MASTER_KEY",
    "KERYU_PHONE_PEPPER",
    "TWILIO_AUTH_TOKEN",
}
# Roles that run until SIGTERM and serve /healthz and /readyz on KERYU_HTTP_ADDR.
LONG_RUNNING = {"serve", "command-api", "projector", "dispatcher"}
GLOBAL_FLAGS = {"--help", "-h", "--version", "-V"}

problems: list[str] = []
passed = 0


def check(ok: bool, where: str, message: str) -> bool:
    """Records one check; `message` says what is wrong when `ok` is false."""
    global passed
    if ok:
        passed += 1
    else:
        problems.append(f"{where}: {message}")
    return ok


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_absolute() else str(path)


# --- what the code declares ------------------------------------------------------------------


def strip_rust_comments(source: str) -> str:
    """Removes // comments (doc comments included) outside string literals."""
    out = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == '"':
            j = i + 1
            while j < n and source[j] != '"':
                j += 2 if source[j] == "\\" else 1
            out.append(source[i : j + 1])
            i = j + 1
        elif c == "'" and source[i : i + 3] == "'\"'":
            out.append("'\"'")
            i += 3
        elif source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`, skipping string literals."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = []
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                raise ValueError(f"unbalanced {c!r} at {i}")
            if not stack:
                return i
        i += 1
    raise ValueError("unclosed bracket")


def split_top(body: str) -> list[str]:
    """Splits at commas outside brackets, strings and generics."""
    items, depth, current, i = [], 0, [], 0
    while i < len(body):
        c = body[i]
        if c == '"':
            j = i + 1
            while j < len(body) and body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            current.append(body[i : j + 1])
            i = j + 1
            continue
        if c in "([{<":
            depth += 1
        elif c in ")]}>" and not (c == ">" and body[i - 1 : i] == "-"):
            depth -= 1
        if c == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    if "".join(current).strip():
        items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def attributes_and_rest(item: str) -> tuple[list[str], str]:
    attrs = []
    rest = item.lstrip()
    while rest.startswith("#["):
        end = matching(rest, 1)
        attrs.append(rest[2:end])
        rest = rest[end + 1 :].lstrip()
    return attrs, rest


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


class Cli:
    """The command tree of the `keryu` binary, read from cli/src's clap derives."""

    def __init__(self) -> None:
        self.sources = ""
        for path in sorted((ROOT / "cli" / "src").rglob("*.rs")):
            self.sources += strip_rust_comments(path.read_text()) + "\n"
        # name -> {"flags": set, "sub": {name: node} | None}
        self.root = {"flags": set(GLOBAL_FLAGS), "sub": self.enum_commands("Task")}
        names = re.search(r"const NAMES:[^=]*=\s*\[([^\]]*)\]", self.sources)
        self.projections = set(re.findall(r'"([a-z_]+)"', names.group(1))) if names else None

    def body(self, keyword: str, name: str) -> str | None:
        match = re.search(rf"\b{keyword}\s+{name}\b[^{{;]*\{{", self.sources)
        if not match:
            return None
        start = match.end() - 1
        return self.sources[start + 1 : matching(self.sources, start)]

    def flags_of_fields(self, body: str) -> set[str]:
        flags = set(GLOBAL_FLAGS)
        for field in split_top(body):
            attrs, rest = attributes_and_rest(field)
            name = re.match(r"(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:", rest)
            for attr in attrs:
                args = re.match(r"(?:arg|clap)\((.*)\)$", attr, re.S)
                if not args or not name:
                    continue
                long = re.search(r'\blong\b(?:\s*=\s*"([^"]+)")?', args.group(1))
                if long:
                    flags.add("--" + (long.group(1) or name.group(1).replace("_", "-")))
                short = re.search(r"\bshort\b(?:\s*=\s*'(.)')?", args.group(1))
                if short:
                    flags.add("-" + (short.group(1) or name.group(1)[0]))
        return flags

    def enum_commands(self, enum: str) -> dict:
        body = self.body("enum", enum)
        if body is None:
            raise SystemExit(f"lint: cannot find `enum {enum}` in cli/src")
        commands = {}
        for item in split_top(body):
            attrs, rest = attributes_and_rest(item)
            variant = re.match(r"(\w+)\s*(?:\((.*)\)|\{(.*)\})?\s*$", rest, re.S)
            if not variant:
                continue
            name = kebab(variant.group(1))
            for attr in attrs:
                renamed = re.search(r'command\(.*\bname\s*=\s*"([^"]+)"', attr)
                if renamed:
                    name = renamed.group(1)
            node = {"flags": set(GLOBAL_FLAGS), "sub": None}
            if variant.group(2):
                type_name = variant.group(2).strip().split("::")[-1]
                if any(re.match(r"command\(\s*subcommand\s*\)", a) for a in attrs):
                    node["sub"] = self.enum_commands(type_name)
                else:
                    fields = self.body("struct", type_name)
                    if fields is not None:
                        node["flags"] = self.flags_of_fields(fields)
            elif variant.group(3):
                node["flags"] = self.flags_of_fields(variant.group(3))
            commands[name] = node
        return commands

    def check_command(self, tokens: list[str], where: str) -> str | None:
        """Checks `keryu <tokens>`; returns the leaf subcommand's name when valid."""
        node, path = self.root, []
        rest = list(tokens)
        while node["sub"] is not None:
            if not rest or rest[0].startswith("-"):
                check(False, where, f"`keryu {' '.join(tokens)}` names no subcommand of "
                      f"`keryu {' '.join(path)}`".replace("keryu  ", "keryu "))
                return None
            word = rest.pop(0)
            if not check(word in node["sub"], where,
                         f"`keryu {' '.join(path + [word])}`: no such subcommand "
                         f"(cli/src has: {', '.join(sorted(node['sub']))})"):
                return None
            path.append(word)
            node = node["sub"][word]
        for token in rest:
            if token.startswith("-") and not token.startswith("-<"):
                flag = token.split("=", 1)[0]
                check(flag in node["flags"], where,
                      f"`keryu {' '.join(path)}` has no flag {flag} "
                      f"(it has: {', '.join(sorted(node['flags'] - GLOBAL_FLAGS)) or 'none'})")
        if path[:2] == ["projections", "rebuild"] and self.projections is not None:
            for token in rest:
                if re.fullmatch(r"[a-z_]+", token):
                    check(token in self.projections, where,
                          f"no projection {token!r} (known: {', '.join(sorted(self.projections))})")
        return path[0]


def known_env_keys() -> set[str]:
    keys = set(STANDARD_KEYS)
    config_files = [ROOT / "infra" / "src" / "config.rs"]
    config_files += sorted((ROOT / "infra" / "src" / "config").rglob("*.rs"))
    config_files += sorted((ROOT / "cli" / "src").rglob("*.rs"))
    for path in config_files:
        if path.exists():
            keys |= set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', path.read_text()))
    for path in glob.glob(str(ROOT / "*" / "src" / "**" / "*.rs"), recursive=True):
        text = Path(path).read_text()
        keys |= set(re.findall(r'env::var(?:_os)?\(\s*"([A-Z][A-Z0-9_]*)"', text))
        keys |= set(re.findall(r'\benv\s*=\s*"([A-Z][A-Z0-9_]*)"', text))
        keys |= set(re.findall(r'from_env\(\s*"([A-Z][A-Z0-9_]*)"', text))
    return keys


def dotenv_keys(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if check(bool(match), f"{rel(path)}:{number}", "not a KEY=value line") and match:
            values[match.group(1)] = match.group(2)
    return values


# --- YAML ------------------------------------------------------------------------------------


def load_all_yaml() -> dict[Path, list]:
    documents = {}
    for path in sorted(list(DEPLOY.rglob("*.yaml")) + list(DEPLOY.rglob("*.yml"))):
        try:
            docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        except yaml.YAMLError as error:
            check(False, rel(path), f"YAML does not parse: {error}")
            continue
        check(bool(docs), rel(path), "holds no YAML document")
        documents[path] = docs
    return documents


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", path.read_text())
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def exec_form(value: str, where: str) -> list[str] | None:
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = None
    if check(isinstance(parsed, list) and all(isinstance(x, str) for x in parsed), where,
             f"{value!r} is not an exec-form JSON array (the shell form would not pass "
             "SIGTERM to keryu)"):
        return parsed
    return None


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_dockerfile(cli: Cli, keys: set[str]) -> str | None:
    path = DEPLOY / "Dockerfile"
    where = rel(path)
    if not check(path.exists(), where, "missing"):
        return None
    instructions = dockerfile_instructions(path)
    args = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip()
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    check(len(stages) >= 2, where, "is not multi-stage (a builder and a small runtime stage)")
    if not stages:
        return None
    final = instructions[stages[-1] :]

    def expand(text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), text)

    builder = expand(instructions[stages[0]][1])
    cargo = (ROOT / "Cargo.toml").read_text()
    msrv = re.search(r'rust-version\s*=\s*"([^"]+)"', cargo)
    rust = re.match(r"(?:docker\.io/(?:library/)?)?rust:(\d+(?:\.\d+)*)", builder)
    if check(bool(rust), where, f"the builder {builder!r} is not a versioned rust image") and msrv:
        check(version_tuple(rust.group(1)) >= version_tuple(msrv.group(1)), where,
              f"builder Rust {rust.group(1)} is older than the workspace's rust-version "
              f"{msrv.group(1)}")

    users = [rest for word, rest in final if word == "USER"]
    if check(bool(users), where, "the runtime stage sets no USER: the image would run as root"):
        user = expand(users[-1]).split(":")[0]
        check(user not in ("root", "0"), where, f"the runtime stage runs as {user!r}")
    entry = [rest for word, rest in final if word == "ENTRYPOINT"]
    if check(bool(entry), where, "no ENTRYPOINT in the runtime stage"):
        form = exec_form(entry[-1], where)
        check(form == ["keryu"], where, f'ENTRYPOINT is {entry[-1]}, expected ["keryu"]')
    cmd = [rest for word, rest in final if word == "CMD"]
    if check(bool(cmd), where, "no CMD (the default role)"):
        form = exec_form(cmd[-1], where)
        if form:
            cli.check_command(form, f"{where} CMD")

    env = {}
    for word, rest in final:
        if word == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", rest):
                env[name] = value
    for name in env:
        check(name in keys, where, f"ENV {name} is not a key the code reads")
    addr = env.get("KERYU_HTTP_ADDR", "")
    if check(addr.startswith("0.0.0.0:") or addr.startswith("[::]:"), where,
             "ENV KERYU_HTTP_ADDR must listen on every interface (the default is loopback)"):
        port = addr.rsplit(":", 1)[1]
        exposed = [rest for word, rest in final if word == "EXPOSE"]
        check(any(port in e.split() for e in exposed), where,
              f"EXPOSE does not name the listen port {port}")
    for word, rest in instructions:
        if word in ("COPY", "ADD") and "--from" not in rest:
            parts = [p for p in rest.split() if not p.startswith("--")]
            for source in parts[:-1]:
                check(source in (".", "./") or any(ROOT.glob(source)), where,
                      f"{word} source {source} does not exist")
    check(any("ca-certificates" in rest for _, rest in final)
          or "distroless" in instructions[stages[-1]][1], where,
          "the runtime stage has no CA certificates (HTTPS to Twilio, TLS to PostgreSQL)")

    ignore = ROOT / ".dockerignore"
    if check(ignore.exists(), ".dockerignore", "missing: target/ and .git would be sent to "
             "the builder"):
        patterns = {line.strip().rstrip("/") for line in ignore.read_text().splitlines()}
        for needed in (".git", "target", ".env"):
            check(any(p in (needed, f"**/{needed}") for p in patterns), ".dockerignore",
                  f"does not exclude {needed}")
    return addr.rsplit(":", 1)[-1] if addr else None


# --- compose ---------------------------------------------------------------------------------


def command_tokens(value) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    return [str(token) for token in value or []]


def env_map(value) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    result = {}
    for entry in value or []:
        name, _, val = str(entry).partition("=")
        result[name] = val
    return result


def is_keryu_image(image: str | None) -> bool:
    if not image:
        return False
    name = re.sub(r"\$\{[^:}]*:-([^}]*)\}", r"\1", image)  # ${KERYU_IMAGE:-keryu:local}
    return name.split("/")[-1].split(":")[0].split("@")[0] == "keryu"


def check_compose(cli: Cli, keys: set[str], documents: dict[Path, list]) -> None:
    path = DEPLOY / "compose.yaml"
    where = rel(path)
    if not check(path in documents, where, "missing or unparsable"):
        return
    compose = documents[path][0]
    services = compose.get("services") or {}
    volumes = set((compose.get("volumes") or {}).keys())
    roles: dict[str, list[str]] = {}
    probe_paths = set()
    env_values: dict[str, str] = {}

    for name, service in services.items():
        here = f"{where} services.{name}"
        for target in service.get("depends_on") or []:
            check(target in services, here, f"depends on {target}, which is not a service")
        for volume in service.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else volume.split(":")[0]
            kind = volume.get("type") if isinstance(volume, dict) else None
            if source and source.startswith("."):
                check((DEPLOY / source).exists(), here, f"mounts {source}, which does not exist")
            elif source and kind != "tmpfs" and not source.startswith("/"):
                check(source in volumes, here, f"uses volume {source}, not declared")
        build = service.get("build")
        if isinstance(build, dict):
            dockerfile = (DEPLOY / build.get("context", ".") / build.get("dockerfile", "Dockerfile"))
            check(dockerfile.resolve().exists(), here, f"builds {dockerfile}, which does not exist")
        if not is_keryu_image(service.get("image")):
            continue

        tokens = command_tokens(service.get("command"))
        if not check(bool(tokens), here, "a Keryu service without an explicit command"):
            continue
        role = cli.check_command(tokens, here)
        if role is None:
            continue
        count = int((service.get("deploy") or {}).get("replicas", 1))
        roles.setdefault(role, []).extend([name] * count)

        environment: dict[str, str] = {}
        for env_file in service.get("env_file") or []:
            file_path = env_file.get("path") if isinstance(env_file, dict) else env_file
            required = env_file.get("required", True) if isinstance(env_file, dict) else True
            full = DEPLOY / file_path
            if full.exists():
                environment.update(dotenv_keys(full))
            else:
                check(not required, here, f"env_file {file_path} does not exist")
        environment.update(env_map(service.get("environment")))
        for key in environment:
            check(key in keys, here, f"environment key {key} is not one the code reads")
        env_values.update(environment)

        if role in LONG_RUNNING:
            test = command_tokens((service.get("healthcheck") or {}).get("test"))
            paths = [t for t in test if t in ("/healthz", "/readyz")]
            if check(bool(paths) and "keryu-healthcheck" in test, here,
                     "a long-running role needs a healthcheck running keryu-healthcheck "
                     "/healthz or /readyz"):
                probe_paths.update(paths)

    check(probe_paths == {"/healthz", "/readyz"}, where,
          f"healthchecks use {sorted(probe_paths)}; expected both /healthz and /readyz")
    check(len(roles.get("command-api", [])) >= 2, where, "needs command-api ×2")
    check(len(roles.get("projector", [])) >= 1, where, "needs a projector")
    check(len(roles.get("dispatcher", [])) >= 2, where, "needs dispatcher ×2")
    check("migrate" in roles, where, "needs a one-shot `keryu migrate` service")
    sims = [n for n in roles.get("twilio-sim", [])]
    check(bool(sims) and all("demo" in (services[n].get("profiles") or []) for n in sims), where,
          "needs a twilio-sim service in the `demo` profile")
    for dependent, service in services.items():
        if is_keryu_image(service.get("image")) and dependent not in roles.get("migrate", []):
            condition = ((service.get("depends_on") or {}).get("migrate") or {}) \
                if isinstance(service.get("depends_on"), dict) else {}
            if dependent not in roles.get("twilio-sim", []):
                check(condition.get("condition") == "service_completed_successfully",
                      f"{where} services.{dependent}", "must wait for migrate to complete")

    images = {name: str(service.get("image", "")) for name, service in services.items()}
    check(any(i.startswith("postgres:") for i in images.values()), where, "needs PostgreSQL")
    nats = [n for n, i in images.items() if i.startswith("nats:")]
    check(bool(nats) and all("-js" in command_tokens(services[n].get("command")) for n in nats),
          where, "needs NATS started with JetStream (-js)")
    collectors = [n for n, i in images.items() if "opentelemetry-collector" in i]
    check(bool(collectors), where, "needs an OpenTelemetry collector")

    # The load balancer forwards to a service running the command API, on its port.
    nginx = DEPLOY / "nginx.conf"
    if check(nginx.exists(), rel(nginx), "missing"):
        upstreams = re.findall(r"http://([A-Za-z0-9_-]+):(\d+)", nginx.read_text())
        check(bool(upstreams), rel(nginx), "proxies to no http://service:port")
        api_port = env_values.get("KERYU_HTTP_ADDR", "").rsplit(":", 1)[-1]
        for host, port in upstreams:
            check(host in roles.get("command-api", []) + roles.get("serve", []), rel(nginx),
                  f"proxies to {host}, which does not run the command API")
            check(port == api_port, rel(nginx),
                  f"proxies to port {port}, but KERYU_HTTP_ADDR listens on {api_port}")

    # Names used in URLs of the Keryu environment resolve on the compose network.
    for key in ("NATS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "PUBLIC_BASE_URL", "DATABASE_URL"):
        url = env_values.get(key, "")
        host = re.match(r"\w+://(?:[^@/]*@)?([^:/?]+)", url)
        if host and host.group(1) not in ("127.0.0.1", "localhost"):
            check(host.group(1) in services, where,
                  f"{key} points at {host.group(1)}, which is not a compose service")

    collector_config = DEPLOY / "otel-collector.yaml"
    if check(collector_config in documents, rel(collector_config), "missing or unparsable"):
        check_collector(documents[collector_config][0], rel(collector_config))


def check_collector(config: dict, where: str) -> None:
    protocols = ((config.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}
    check({"grpc", "http"} <= set(protocols), where, "the otlp receiver should take gRPC and HTTP")
    service = config.get("service") or {}
    for extension in service.get("extensions") or []:
        check(extension in (config.get("extensions") or {}), where,
              f"service uses extension {extension}, not defined")
    for name, pipeline in (service.get("pipelines") or {}).items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section) or []:
                check(component in (config.get(section) or {}), where,
                      f"pipeline {name} uses {section[:-1]} {component}, not defined")


# --- Kubernetes ------------------------------------------------------------------------------


def pod_spec(document: dict) -> dict | None:
    kind = document.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return (document.get("spec") or {}).get("template", {}).get("spec")
    if kind == "CronJob":
        return document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(cli: Cli, keys: set[str], documents: dict[Path, list]) -> None:
    kustomization = K8S / "kustomization.yaml"
    where = rel(kustomization)
    if not check(kustomization in documents, where, "missing or unparsable"):
        return
    resources = documents[kustomization][0].get("resources") or []
    for resource in resources:
        check((K8S / resource).exists(), where, f"resource {resource} does not exist")
    for path in documents:
        if path.parent == K8S and path != kustomization:
            check(path.name in resources, where, f"{path.name} is not listed in resources")

    objects = []
    for resource in resources:
        for document in documents.get(K8S / resource, []):
            objects.append((K8S / resource, document))
    by_kind: dict[str, dict[str, dict]] = {}
    for _, document in objects:
        by_kind.setdefault(document.get("kind", "?"), {})[
            (document.get("metadata") or {}).get("name", "?")] = document

    config_maps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    for name, config_map in config_maps.items():
        for key in config_map.get("data") or {}:
            check(key in keys, f"ConfigMap/{name}", f"key {key} is not one the code reads")
            check(key not in SECRET_KEYS, f"ConfigMap/{name}",
                  f"{key} is a secret: keep it in the Secret")
    for name, secret in secrets.items():
        secret_keys = set(secret.get("stringData") or {}) | set(secret.get("data") or {})
        for key in secret_keys:
            check(key in keys, f"Secret/{name}", f"key {key} is not one the code reads")
        check(SECRET_KEYS <= secret_keys, f"Secret/{name}",
              f"should hold {', '.join(sorted(SECRET_KEYS - secret_keys))}")

    roles: dict[str, int] = {}
    pods: list[tuple[str, dict, dict]] = []  # (where, pod labels, pod spec)
    for path, document in objects:
        spec = pod_spec(document)
        if spec is None:
            continue
        kind = document["kind"]
        here = f"{rel(path)} {kind}/{document['metadata']['name']}"
        labels = (document["spec"].get("template", {}).get("metadata") or {}).get("labels") or {}
        pods.append((here, labels, spec))
        if kind == "Deployment":
            selector = (document["spec"].get("selector") or {}).get("matchLabels") or {}
            check(labels_match(selector, labels), here, "selector does not match the pod labels")
        pod_security = spec.get("securityContext") or {}
        for container in spec.get("containers") or []:
            if not is_keryu_image(container.get("image")):
                continue
            chere = f"{here} container {container.get('name')}"
            tokens = command_tokens(container.get("args"))
            if container.get("command"):
                command = command_tokens(container["command"])
                check(command[:1] == ["keryu"], chere, "command must start with keryu")
                tokens = command[1:] + tokens
            role = cli.check_command(tokens, chere) if check(bool(tokens), chere,
                                                             "names no role in args") else None
            if role is None:
                continue
            replicas = document["spec"].get("replicas", 1) if kind == "Deployment" else 0
            roles[role] = roles.get(role, 0) + (replicas if kind == "Deployment" else 1)

            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    check(source["configMapRef"]["name"] in config_maps, chere,
                          f"envFrom ConfigMap {source['configMapRef']['name']} is not defined")
                if "secretRef" in source:
                    check(source["secretRef"]["name"] in secrets, chere,
                          f"envFrom Secret {source['secretRef']['name']} is not defined")
            for variable in container.get("env") or []:
                check(variable["name"] in keys, chere,
                      f"env {variable['name']} is not a key the code reads")

            security = container.get("securityContext") or {}
            check(security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, chere,
                  "must set runAsNonRoot: true")
            check(security.get("runAsUser", pod_security.get("runAsUser", 1)) != 0, chere,
                  "runs as uid 0")
            check(security.get("readOnlyRootFilesystem") is True, chere,
                  "must set readOnlyRootFilesystem: true")
            check(security.get("allowPrivilegeEscalation") is False, chere,
                  "must set allowPrivilegeEscalation: false")
            resources_ = container.get("resources") or {}
            for section in ("requests", "limits"):
                check({"memory"} <= set(resources_.get(section) or {})
                      and (section == "limits" or "cpu" in resources_.get(section, {})), chere,
                      f"needs resource {section} (cpu and memory requests, a memory limit)")

            if kind == "Deployment" and role in LONG_RUNNING:
                ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
                listen = None
                for name in config_maps:
                    listen = (config_maps[name].get("data") or {}).get("KERYU_HTTP_ADDR", listen)
                if listen:
                    check(int(listen.rsplit(":", 1)[1]) in ports.values(), chere,
                          f"no containerPort for KERYU_HTTP_ADDR {listen}")
                for probe, wanted in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                                      ("startupProbe", "/healthz")):
                    get = (container.get(probe) or {}).get("httpGet")
                    if probe == "startupProbe" and probe not in container:
                        continue
                    if check(bool(get), chere, f"needs an HTTP {probe} on {wanted}"):
                        check(get.get("path") == wanted, chere,
                              f"{probe} must GET {wanted}, not {get.get('path')}")
                        check(get.get("port") in ports or get.get("port") in ports.values(),
                              chere, f"{probe} port {get.get('port')} is not a container port")

    check(roles.get("command-api", 0) >= 2, "deploy/k8s", "needs command-api with ≥2 replicas")
    check(roles.get("projector", 0) >= 1, "deploy/k8s", "needs a projector Deployment")
    check(roles.get("dispatcher", 0) >= 2, "deploy/k8s", "needs dispatcher with ≥2 replicas")
    check(any(d.get("kind") == "Job" and "migrate" in command_tokens(
        pod_spec(d)["containers"][0].get("args")) for _, d in objects), "deploy/k8s",
        "needs a Job running `keryu migrate`")

    def pods_selected(selector: dict) -> list[tuple[str, dict, dict]]:
        return [pod for pod in pods if labels_match(selector, pod[1])]

    for name, service in by_kind.get("Service", {}).items():
        selected = pods_selected((service.get("spec") or {}).get("selector") or {})
        if check(bool(selected), f"Service/{name}", "selects no pod"):
            port_names = {p.get("name") for pod in selected for c in pod[2]["containers"]
                          for p in c.get("ports") or []}
            port_numbers = {p.get("containerPort") for pod in selected for c in pod[2]["containers"]
                            for p in c.get("ports") or []}
            for port in service["spec"].get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                check(target in port_names or target in port_numbers, f"Service/{name}",
                      f"targetPort {target} is not a port of the selected pods")
    check("PodDisruptionBudget" in by_kind, "deploy/k8s", "needs a PodDisruptionBudget for the API")
    for name, budget in by_kind.get("PodDisruptionBudget", {}).items():
        selector = ((budget.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        check(bool(pods_selected(selector)), f"PodDisruptionBudget/{name}", "selects no pod")
    for name, ingress in by_kind.get("Ingress", {}).items():
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            for route in (rule.get("http") or {}).get("paths") or []:
                backend = route["backend"]["service"]
                target = by_kind.get("Service", {}).get(backend["name"])
                if check(target is not None, f"Ingress/{name}",
                         f"backend Service {backend['name']} is not defined"):
                    ports = target["spec"].get("ports") or []
                    wanted = backend["port"].get("name", backend["port"].get("number"))
                    check(any(wanted in (p.get("name"), p.get("port")) for p in ports),
                          f"Ingress/{name}", f"backend port {wanted} is not a port of "
                          f"Service/{backend['name']}")


# --- the operations guide --------------------------------------------------------------------


def check_docs(cli: Cli, keys: set[str]) -> None:
    where = rel(DOCS)
    if not check(DOCS.exists(), where, "missing"):
        return
    text = DOCS.read_text()
    code = re.findall(r"```[^\n]*\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text)
    commands = 0
    for snippet in code:
        for line in snippet.splitlines():
            for match in re.finditer(r"(?:^|[\s;|&(])keryu\s+([a-z][a-z0-9-]*(?=\s|$).*)", line):
                # `kubectl -n keryu …`, `psql -d keryu …`: the namespace or database, not the
                # binary (but `… -- keryu projections status` is the binary).
                before = line[: match.start() + 1].split()
                if before and before[-1].startswith("-") and before[-1] != "--":
                    continue
                words = []
                for word in shlex.split(match.group(1).split("#")[0], posix=True) \
                        if "'" not in match.group(1) else match.group(1).split():
                    if word in ("|", "||", "&&", ";", ">", "<", "<<<", ")") or word[0] in "|;>)&":
                        break
                    words.append(word)
                commands += 1
                cli.check_command([w for w in words if not w.startswith("<")],
                                  f"{where}: `keryu {' '.join(words)}`")
    check(commands > 0, where, "shows no keryu command")
    for key in sorted(set(re.findall(
            r"\b((?:KERYU|TWILIO|NATS|OTEL)_[A-Z0-9_]*[A-Z0-9]|DATABASE_URL|PUBLIC_BASE_URL)\b",
            text))):
        check(key in keys, where, f"names {key}, which the code does not read")


# --- tools, when installed ------------------------------------------------------------------


def check_with_tools() -> None:
    """Shell syntax always; shellcheck and `kubectl kustomize` only where they are installed."""
    scripts = sorted(DEPLOY.glob("*.sh"))
    for script in scripts:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        check(result.returncode == 0, rel(script), f"bash -n: {result.stderr.strip()}")
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", "--severity=warning", *map(str, scripts)],
                                capture_output=True, text=True)
        check(result.returncode == 0, "shellcheck", result.stdout.strip())
    else:
        print("deploy lint: shellcheck is not installed; skipped", file=sys.stderr)
    if shutil.which("kubectl"):
        result = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True)
        check(result.returncode == 0, "kubectl kustomize deploy/k8s", result.stderr.strip())
    else:
        print("deploy lint: kubectl is not installed; kustomize rendering skipped", file=sys.stderr)


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    os.chdir(ROOT)
    cli = Cli()
    keys = known_env_keys()
    check(bool(cli.root["sub"]) and "serve" in cli.root["sub"], "cli/src/main.rs",
          "could not read the subcommands")
    check({"DATABASE_URL", "KERYU_HTTP_ADDR", "NATS_URL"} <= keys, "infra/src/config.rs",
          "could not read the configuration keys")
    documents = load_all_yaml()
    check_dockerfile(cli, keys)
    check_compose(cli, keys, documents)
    check_kubernetes(cli, keys, documents)
    check_docs(cli, keys)
    check_with_tools()
    for problem in problems:
        print(f"deploy lint: {problem}", file=sys.stderr)
    print(f"deploy-lint: {passed} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
