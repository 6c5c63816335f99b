"""Loading AsyncAPI 3.0 documents and plain JSON Schema files into a :class:`~contracts.model.ContractSet`.

The AsyncAPI structure is checked here (there is no official AsyncAPI 3.0 schema among our dependencies):
``asyncapi: 3.0.x``, ``info.title``/``info.version``, channels with an ``address``, messages, operations
with ``action: send|receive`` and a ``channel`` reference, and payload/header schemas that are valid
JSON Schema (meta-validated with jsonschema-rs). ``$ref`` is resolved within a document and across files,
relative to the file that holds the reference; a team's own JSON Schema files work unchanged: a ``$ref`` by
URI finds the file whose ``$id`` it names (next to the referring file, by the same relative path as between
the two ``$id``s, or by file name under its directory), and their ``$schema`` dialect is kept. Every problem
raises :class:`ContractError` naming the file, the JSON pointer and what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import yaml
from sagaproof.contracts.errors import ContractError, ContractSourceError
from sagaproof.contracts.model import Channel, ContractSet, Message, SubjectSchema
from sagaproof.contracts.subjects import address_to_pattern, is_valid_pattern

__all__ = ["load", "load_dir", "normalize_schema"]

Reader = Callable[[Path], str]

_VERSION = re.compile(r"^3\.0\.\d+$")
_SUFFIXES = {".yaml", ".yml", ".json"}
DELIVERY_INTENTS = ("at-most-once", "at-least-once")  # values of a receive operation's x-sagaproof-delivery
# Keys whose values are data, not schemas: never look for $ref inside them.
_DATA_KEYS = {"enum", "const", "examples", "example", "default"}
_ANNOTATIONS = {"title", "description", "$comment", "examples", "example", "deprecated", "readOnly",
                "writeOnly", "default"}
_SCHEMA_FORMATS = ("application/vnd.aai.asyncapi", "application/schema+json", "application/schema+yaml",
                   "application/vnd.oai.openapi")


def _esc(token: object) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _unesc(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _read_disk(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ContractSourceError(f"Contract file {path} does not exist; check the path in the system file.") from err
    except OSError as exc:
        raise ContractSourceError(f"Contract file {path} cannot be read ({exc.strerror}).") from exc


def normalize_schema(schema: Any) -> Any:
    """Rewrite OpenAPI-style ``nullable: true`` into JSON Schema (``"null"`` added to ``type``/``enum``).

    Returns a new object; the input is not modified.
    """
    if isinstance(schema, list):
        return [normalize_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        out[k] = v if k in _DATA_KEYS else normalize_schema(v)
    if out.pop("nullable", False) is True:
        t = out.get("type")
        if isinstance(t, str) and t != "null":
            out["type"] = [t, "null"]
        elif isinstance(t, list) and "null" not in t:
            out["type"] = [*t, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if "type" not in out and "enum" not in out and ("anyOf" in out or "oneOf" in out):
            key = "anyOf" if "anyOf" in out else "oneOf"
            out[key] = [*out[key], {"type": "null"}]
    return out


def _find_anchor(node: Any, name: str) -> Any:
    """The subschema of a document whose ``$anchor`` (or draft-07 ``$id: "#name"``) is *name*."""
    if isinstance(node, dict):
        if node.get("$anchor") == name or node.get("$id") == f"#{name}":
            return node
        for k, v in node.items():
            if k not in _DATA_KEYS:
                hit = _find_anchor(v, name)
                if hit is not None:
                    return hit
    elif isinstance(node, list):
        for v in node:
            hit = _find_anchor(v, name)
            if hit is not None:
                return hit
    return None


class _Resolver:
    """Parsed documents (cached per path) and ``$ref`` resolution."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.docs: dict[Path, Any] = {}
        self._inlined: dict[tuple[Path, str], Any] = {}
        self.ids: dict[str, Path] = {}  # $id of a loaded document -> its file
        self.dialects: set[str] = set()  # $schema of the documents inlined into the current schema

    def doc(self, path: Path, referrer: tuple[Path, str] | None = None) -> Any:
        if path not in self.docs:
            try:
                text = self.reader(path)
            except ContractSourceError as err:
                if referrer is None:
                    raise
                raise ContractError(referrer[0], referrer[1], f"$ref points to {path}, which cannot be read") from err
            try:
                self.docs[path] = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(exc, "problem", None) or str(exc)
                raise ContractError(path, "", f"is not valid YAML/JSON{where}: {problem}") from exc
            doc = self.docs[path]
            if isinstance(doc, dict) and isinstance(doc.get("$id"), str):
                self.ids.setdefault(doc["$id"].split("#")[0], path)
        return self.docs[path]

    def at(self, path: Path, pointer: str, referrer: tuple[Path, str]) -> Any:
        node = self.doc(path, referrer)
        if pointer in ("", "/"):
            return node
        if not pointer.startswith("/"):
            anchored = _find_anchor(node, pointer)
            if anchored is None:
                raise ContractError(referrer[0], referrer[1], f"$ref fragment '#{pointer}' is neither a JSON pointer "
                                                              f"nor an $anchor of {path.name}")
            return anchored
        for raw in pointer[1:].split("/"):
            tok = _unesc(raw)
            if isinstance(node, dict) and tok in node:
                node = node[tok]
            elif isinstance(node, list) and tok.isdigit() and int(tok) < len(node):
                node = node[int(tok)]
            else:
                raise ContractError(referrer[0], referrer[1],
                                    f"$ref target {path.name}#{pointer} does not exist")
        return node

    def split(self, ref: str, base: Path) -> tuple[Path, str]:
        file_part, _, frag = ref.partition("#")
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", file_part):  # an absolute URI: some document's $id
            target = self._by_id(file_part, base)
            if target is None:
                raise ContractError(base, "", f"$ref '{ref}' names no file here: no schema file next to {base.name} "
                                              f"has that $id; put the file whose $id it is next to the contract")
            return target, frag
        target = Path(os.path.normpath(base.parent / file_part)) if file_part else base
        return target, frag

    def _by_id(self, uri: str, base: Path) -> Path | None:
        """The file whose ``$id`` is *uri*: one loaded already, the one at the same relative path from the
        referring file as between the two ``$id``s, or a file of that name under the referring file's directory."""
        if uri in self.ids:
            return self.ids[uri]
        candidates: list[Path] = []
        base_doc = self.docs.get(base)
        base_id = base_doc.get("$id") if isinstance(base_doc, dict) else None
        if isinstance(base_id, str):
            b, u = urlsplit(base_id), urlsplit(uri)
            if (b.scheme, b.netloc) == (u.scheme, u.netloc):
                rel = os.path.relpath(u.path or "/", posixpath.dirname(b.path) or "/")
                candidates.append(Path(os.path.normpath(base.parent / rel)))
        name = posixpath.basename(urlsplit(uri).path)
        if name:
            with contextlib.suppress(OSError):
                candidates.extend(sorted(base.parent.rglob(name)))
        for path in candidates:
            try:
                doc = self.doc(path)
            except (ContractSourceError, ContractError):
                continue
            if isinstance(doc, dict) and isinstance(doc.get("$id"), str) and doc["$id"].split("#")[0] == uri:
                return path
        return None

    def deref(self, node: Any, file: Path, ptr: str) -> tuple[Any, Path, str]:
        """Follow ``$ref`` at the top of *node* (not inside it); return the node and where it lives."""
        seen: set[tuple[Path, str]] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str):
                raise ContractError(file, f"{ptr}/$ref", "$ref must be a string")
            tfile, tptr = self.split(ref, file)
            if (tfile, tptr) in seen:
                raise ContractError(file, ptr, f"$ref '{ref}' is circular")
            seen.add((tfile, tptr))
            node = self.at(tfile, tptr, (file, f"{ptr}/$ref"))
            file, ptr = tfile, tptr
        return node, file, ptr

    def inline(self, node: Any, file: Path, ptr: str, stack: frozenset[tuple[Path, str]] = frozenset()) -> Any:
        """Return *node* with every ``$ref`` replaced by its (recursively resolved) target."""
        if isinstance(node, list):
            return [self.inline(v, file, f"{ptr}/{i}", stack) for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            tfile, tptr = self.split(ref, file)
            key = (tfile, tptr)
            if key in stack:
                raise ContractError(file, f"{ptr}/$ref",
                                    f"$ref '{ref}' is recursive; recursive schemas are not supported")
            if key not in self._inlined:
                target = self.at(tfile, tptr, (file, f"{ptr}/$ref"))
                self._inlined[key] = self.inline(target, tfile, tptr, stack | {key})
            root = self.docs.get(tfile)
            if isinstance(root, dict) and isinstance(root.get("$schema"), str):
                self.dialects.add(root["$schema"])
            resolved = self._inlined[key]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if any(k not in _ANNOTATIONS and not k.startswith("x-") for k in siblings):
                return {"allOf": [resolved, self.inline(siblings, file, ptr, stack)]}
            return resolved
        return {k: (v if k in _DATA_KEYS else self.inline(v, file, f"{ptr}/{_esc(k)}", stack))
                for k, v in node.items()}


DRAFT_07 = "http://json-schema.org/draft-07/schema#"
_2019_ONLY = {"prefixItems", "$defs", "dependentRequired", "dependentSchemas", "unevaluatedProperties",
              "unevaluatedItems", "minContains", "maxContains", "$anchor"}


def _draft07_forms(schema: Any) -> bool:
    """True when *schema* uses draft-07 forms (array-form ``items``, ``additionalItems``, ``dependencies``)
    and no keyword of the 2019-09/2020-12 vocabularies."""
    found = False

    def walk(node: Any) -> bool:
        nonlocal found
        if isinstance(node, list):
            return all(walk(v) for v in node)
        if not isinstance(node, dict):
            return True
        if _2019_ONLY & set(node):
            return False
        if isinstance(node.get("items"), list) or "additionalItems" in node or isinstance(node.get("dependencies"), dict):
            found = True
        return all(walk(v) for k, v in node.items() if k not in _DATA_KEYS)

    return walk(schema) and found


def _schema(res: _Resolver, node: Any, file: Path, ptr: str, what: str) -> Any:
    """Resolve, normalise and meta-validate a schema (payload or headers)."""
    node, file, ptr = res.deref(node, file, ptr)
    if isinstance(node, dict) and "schemaFormat" in node and "schema" in node:
        fmt = node["schemaFormat"]
        if not isinstance(fmt, str) or not fmt.startswith(_SCHEMA_FORMATS):
            raise ContractError(file, f"{ptr}/schemaFormat",
                                f"{what} schemaFormat {fmt!r} is not supported; use JSON Schema or the AsyncAPI schema format")
        node, file, ptr = res.deref(node["schema"], file, f"{ptr}/schema")
    if not isinstance(node, (dict, bool)):
        raise ContractError(file, ptr, f"{what} schema must be an object or a boolean, not {type(node).__name__}")
    res.dialects = set()
    schema = normalize_schema(res.inline(node, file, ptr))
    if isinstance(schema, dict) and "$schema" not in schema and len(res.dialects) == 1:
        # The team's schema files share one dialect (draft-07, say): validate the whole payload in it.
        schema = {"$schema": next(iter(res.dialects)), **schema}
    if isinstance(schema, dict) and "$schema" not in schema and _draft07_forms(schema):
        # AsyncAPI's default schema format is a draft-07 superset: array-form items, additionalItems and
        # dependencies are draft-07 forms (2020-12 rejects or ignores them), so read the payload as draft-07.
        schema = {"$schema": DRAFT_07, **schema}
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        inner = "".join(f"/{_esc(p)}" for p in exc.instance_path)
        raise ContractError(file, f"{ptr}{inner}", f"{what} schema is not valid JSON Schema: {exc.message}") from exc
    except jsonschema_rs.ReferencingError as exc:  # pragma: no cover - $ref is inlined before
        raise ContractError(file, ptr, f"{what} schema cannot be resolved: {exc}") from exc
    try:
        jsonschema_rs.validator_for(schema)
    except (ValueError, jsonschema_rs.ValidationError) as exc:
        raise ContractError(file, ptr, f"{what} schema cannot be compiled: {exc}") from exc
    return schema


def _message(res: _Resolver, node: Any, file: Path, ptr: str, key: str) -> Message:
    node, file, ptr = res.deref(node, file, ptr)
    if not isinstance(node, dict):
        raise ContractError(file, ptr, "a message must be an object")
    payload = _schema(res, node["payload"], file, f"{ptr}/payload", "payload") if "payload" in node else True
    headers = _schema(res, node["headers"], file, f"{ptr}/headers", "headers") if "headers" in node else None
    name = node["name"] if isinstance(node.get("name"), str) else key
    ct = node["contentType"] if isinstance(node.get("contentType"), str) else None
    return Message(name=name, payload=payload, headers=headers, content_type=ct, file=str(file), pointer=ptr)


def _require_map(node: Any, file: Path, ptr: str, what: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise ContractError(file, ptr, f"{what} must be an object, not {type(node).__name__}")
    return node


def _load_asyncapi(res: _Resolver, path: Path, service: str | None, cs: ContractSet) -> str:
    """One AsyncAPI 3 document: its channels into *cs*, and its operations as this service's sends and
    receives; returns the service's name (``info.x-service``, else the file's stem)."""
    doc, info = _asyncapi_header(res, path)
    if service is None:
        xs = info.get("x-service")
        service = xs if isinstance(xs, str) and xs else path.stem
    by_loc = _load_channels(res, doc, path, cs)
    operations = _require_map(doc.get("operations", {}) or {}, path, "/operations", "'operations'")
    for okey, onode in operations.items():
        _load_operation(res, path, okey, onode, by_loc, cs, service)
    return service


def _asyncapi_header(res: _Resolver, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document and its ``info``, once its version and required fields are checked."""
    doc = res.doc(path)
    if not isinstance(doc, dict):
        raise ContractError(path, "", "is not an AsyncAPI document (the top level must be an object)")
    version = doc.get("asyncapi")
    if version is None:
        raise ContractError(path, "/asyncapi", "the required field 'asyncapi' is missing; add asyncapi: 3.0.0")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ContractError(path, "/asyncapi", f"AsyncAPI version {version!r} is not supported; only 3.0.x is")
    info = _require_map(doc.get("info"), path, "/info", "'info'") if "info" in doc else None
    if info is None:
        raise ContractError(path, "/info", "the required field 'info' is missing")
    for key in ("title", "version"):
        if not isinstance(info.get(key), str) or not info.get(key):
            raise ContractError(path, f"/info/{key}", f"the required field 'info.{key}' is missing or not a string")
    return doc, info


# (file, pointer) of each channel -> (pattern, {message key: Message}, message locations)
_ChannelsByLocation = dict[tuple[Path, str], tuple[str, dict[str, Message], dict[tuple[Path, str], str]]]


def _load_channels(res: _Resolver, doc: dict[str, Any], path: Path, cs: ContractSet) -> _ChannelsByLocation:
    """The document's channels, each with its messages, into *cs*; by (file, pointer) for the operations."""
    channels = _require_map(doc.get("channels", {}) or {}, path, "/channels", "'channels'")
    # (file, pointer) of each channel -> (pattern, {message key: Message}, message locations)
    by_loc: dict[tuple[Path, str], tuple[str, dict[str, Message], dict[tuple[Path, str], str]]] = {}
    for ckey, cnode in channels.items():
        cptr = f"/channels/{_esc(ckey)}"
        cnode, cfile, cptr = res.deref(cnode, path, cptr)
        _require_map(cnode, cfile, cptr, "a channel")
        address = cnode.get("address")
        if not isinstance(address, str) or not address:
            raise ContractError(cfile, f"{cptr}/address",
                                "the channel has no 'address'; set it to the NATS subject (wildcards * and > allowed)")
        pattern = address_to_pattern(address)
        if not is_valid_pattern(pattern):
            raise ContractError(cfile, f"{cptr}/address", f"address {address!r} is not a valid NATS subject")
        msgs: dict[str, Message] = {}
        mlocs: dict[tuple[Path, str], str] = {}
        mnodes = _require_map(cnode.get("messages", {}) or {}, cfile, f"{cptr}/messages", "'messages'")
        for mkey, mnode in mnodes.items():
            mptr = f"{cptr}/messages/{_esc(mkey)}"
            msg = _message(res, mnode, cfile, mptr, mkey)
            msgs[mkey] = msg
            mlocs[(cfile, mptr)] = mkey
            mlocs[(Path(msg.file), msg.pointer)] = mkey
        by_loc[(cfile, cptr)] = (pattern, msgs, mlocs)
        ch = cs.channel(pattern)
        for msg in msgs.values():
            ch.messages.setdefault(msg.name, msg)
        if str(path) not in ch.declared_in:
            ch.declared_in.append(str(path))
    return by_loc


def _load_operation(res: _Resolver, path: Path, okey: str, onode: Any, by_loc: _ChannelsByLocation,
                    cs: ContractSet, service: str) -> None:
    """One operation: the service sends or receives the chosen messages of its channel."""
    optr = f"/operations/{_esc(okey)}"
    onode, ofile, optr = res.deref(onode, path, optr)
    _require_map(onode, ofile, optr, "an operation")
    action = onode.get("action")
    if action not in ("send", "receive"):
        raise ContractError(ofile, f"{optr}/action", f"action must be 'send' or 'receive', not {json.dumps(action)}"
                            if action is not None else "the operation has no action; set it to 'send' or 'receive'")
    cref = onode.get("channel")
    if not isinstance(cref, dict) or not isinstance(cref.get("$ref"), str):
        raise ContractError(ofile, f"{optr}/channel", "the operation needs 'channel' as a $ref to one of the document's channels")
    cfile, cptr = res.split(cref["$ref"], ofile)
    res.at(cfile, cptr, (ofile, f"{optr}/channel/$ref"))
    _, cfile, cptr = res.deref(cref, ofile, f"{optr}/channel")
    if (cfile, cptr) not in by_loc:
        raise ContractError(ofile, f"{optr}/channel", f"$ref '{cref['$ref']}' does not point to a channel of this document")
    pattern, msgs, mlocs = by_loc[(cfile, cptr)]
    chosen = _operation_messages(res, onode, ofile, optr, msgs, mlocs)
    ch = cs.channel(pattern)
    if "x-sagaproof-delivery" in onode:
        intent = onode["x-sagaproof-delivery"]
        if action != "receive" or intent not in DELIVERY_INTENTS:
            raise ContractError(ofile, f"{optr}/x-sagaproof-delivery",
                                f"x-sagaproof-delivery must be one of {', '.join(DELIVERY_INTENTS)} on a receive "
                                f"operation, not {intent!r} on a {action} operation")
        ch.delivery[service] = intent
    side = ch.producers if action == "send" else ch.consumers
    bucket = side.setdefault(service, [])
    for m in chosen:
        if m not in bucket:
            bucket.append(m)


def _operation_messages(res: _Resolver, onode: dict[str, Any], ofile: Path, optr: str, msgs: dict[str, Message],
                        mlocs: dict[tuple[Path, str], str]) -> list[Message]:
    """The messages an operation names (each a $ref to one of its channel's), or all of the channel's."""
    chosen: list[Message]
    if "messages" in onode:
        if not isinstance(onode["messages"], list):
            raise ContractError(ofile, f"{optr}/messages", "'messages' must be a list of $refs to the channel's messages")
        chosen = []
        for i, mref in enumerate(onode["messages"]):
            if not isinstance(mref, dict) or not isinstance(mref.get("$ref"), str):
                raise ContractError(ofile, f"{optr}/messages/{i}", "each operation message must be a $ref")
            loc = res.split(mref["$ref"], ofile)
            res.at(*loc, (ofile, f"{optr}/messages/{i}/$ref"))
            ref_key = mlocs.get(loc)
            if ref_key is None:
                _, tf, tp = res.deref(mref, ofile, f"{optr}/messages/{i}")
                ref_key = mlocs.get((tf, tp))
            if ref_key is None:
                raise ContractError(ofile, f"{optr}/messages/{i}",
                                    f"$ref '{mref['$ref']}' is not a message of the operation's channel")
            chosen.append(msgs[ref_key])
    else:
        chosen = list(msgs.values())
    return chosen


def _load_plain(res: _Resolver, spec: SubjectSchema, cs: ContractSet) -> None:
    path = Path(os.path.normpath(spec.schema_path))
    if not is_valid_pattern(spec.subject):
        raise ContractSourceError(f"Subject {spec.subject!r} mapped to {path} is not a valid NATS subject.")
    schema = _schema(res, res.doc(path), path, "", "payload")
    msg = Message(name=path.stem, payload=schema, file=str(path), pointer="")
    ch = cs.channel(spec.subject)
    ch.messages.setdefault(msg.name, msg)
    ch.declared_in.append(str(path))
    for svc in spec.producers:
        ch.producers.setdefault(svc, []).append(msg)
    for svc in spec.consumers:
        ch.consumers.setdefault(svc, []).append(msg)


def _build(sources: Mapping[str | None, Iterable[Path]], schemas: Iterable[SubjectSchema], reader: Reader) -> ContractSet:
    res = _Resolver(reader)
    cs = ContractSet()
    services: list[str] = []
    for service, files in sources.items():
        for f in files:
            path = Path(os.path.normpath(f))
            name = _load_asyncapi(res, path, service, cs)
            cs.files.append(str(path))
            if name not in services:
                services.append(name)
    for spec in schemas:
        _load_plain(res, spec, cs)
        cs.files.append(str(spec.schema_path))
        for svc in [*spec.producers, *spec.consumers]:
            if svc not in services:
                services.append(svc)
    cs.services = services
    return cs


def load(sources: Mapping[str, Iterable[str | Path]], schemas: Iterable[SubjectSchema] = (), *,
         reader: Reader | None = None) -> ContractSet:
    """Load the contracts of a system.

    Args:
        sources: service name -> that service's AsyncAPI 3.0 files (YAML or JSON).
        schemas: plain JSON Schema files mapped to subjects (for services without AsyncAPI).
        reader: how to read a file (default: from disk); :func:`~contracts.git_refs.load_at_git_ref` passes a git reader.

    Returns:
        The :class:`ContractSet` with every channel, its producers and consumers and resolved schemas.

    Raises:
        ContractError: a document is invalid (file, JSON pointer and problem in the message).
        ContractSourceError: a file cannot be read.

    Example::

        cs = load({"order": [Path("contracts/order.yaml")], "payment": [Path("contracts/payment.yaml")]})
        cs.sender_of("orders.created")  # ['order']
    """
    return _build({k: [Path(p) for p in v] for k, v in sources.items()}, list(schemas), reader or _read_disk)


def _find_asyncapi(paths: Iterable[Path], reader: Reader) -> list[Path]:
    found = []
    for p in sorted(paths):
        if p.suffix.lower() not in _SUFFIXES:
            continue
        text = reader(p)
        # Cheap pre-filter; the document is parsed properly later.
        if re.search(r'(^|[{,])\s*["\']?asyncapi["\']?\s*:', text, re.MULTILINE):
            found.append(p)
    return found


def load_dir(directory: str | Path, *, reader: Reader | None = None) -> ContractSet:
    """Load every AsyncAPI document under *directory* (recursively; other YAML/JSON files are skipped).

    The service of a document is ``info.x-service`` when present, else the file name without suffix.
    """
    d = Path(directory)
    if not d.is_dir():
        raise ContractSourceError(f"Contracts directory {d} does not exist; pass the directory that holds the AsyncAPI files.")
    rd = reader or _read_disk
    files = _find_asyncapi(d.rglob("*"), rd)
    if not files:
        raise ContractSourceError(f"No AsyncAPI document (a YAML/JSON file with an 'asyncapi' key) found under {d}.")
    return _build({None: files}, [], rd)


def dumps(cs: ContractSet) -> str:  # pragma: no cover - debugging aid
    """A JSON dump of the channels (for debugging)."""
    def ch(c: Channel) -> dict[str, Any]:
        return {"producers": {k: [m.name for m in v] for k, v in c.producers.items()},
                "consumers": {k: [m.name for m in v] for k, v in c.consumers.items()}}
    return json.dumps({k: ch(v) for k, v in cs.channels.items()}, indent=2)
