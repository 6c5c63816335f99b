"""Producer/consumer schema compatibility: is every message the producer's schema allows accepted by the
consumer's schema (P ⊆ C)? The one engine behind ``contracts check``, ``contracts diff`` and
``contracts can-i-deploy``.

A pair gets one of three answers:

* ``ok``: proven. A structural proof over JSON Schema 2020-12 and draft-07 (both read into one canonical
  form: draft-07 array-form ``items``/``additionalItems`` become ``prefixItems``/``items``, ``dependencies``
  becomes ``dependentRequired``/``dependentSchemas``, ``unevaluated*`` without in-place applicators becomes
  ``additional*``) shows that every value the producer allows satisfies every keyword of the consumer.
  Producer unions and conditionals are split; keywords of the producer the proof does not use are dropped,
  which only makes the producer larger, so the proof stays sound.
* ``incompatible``: a counterexample was found, a message the producer's schema accepts and the
  consumer's rejects, and *both* jsonschema-rs and python-jsonschema agree on that before it is reported.
  Candidates come from a targeted generator that reads both schemas (bounds, lengths, patterns, formats,
  required and optional properties, tuples, ``contains``, ...), then from a property-based search
  (schemathesis/hypothesis, deterministic) over the producer's schema.
* ``unknown`` (shown as *undecided*): neither. The verdict names the consumer keyword and its location
  (a JSON pointer into the consumer's schema) at which the proof stopped.

A keyword is never assumed to be satisfied: a consumer keyword the proof does not model stops it.

The engine is in four parts: :mod:`._schema_canon` (the verdict, the canonical form), :mod:`._schema_util`,
:mod:`._schema_proof` (the proof) and :mod:`._schema_gen` (counterexample candidates); this module judges a pair.
"""


from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sagaproof.contracts._schema_canon import (
    Verdict,
    _Undecidable,
    canonical,
)
from sagaproof.contracts._schema_gen import (
    _Gen,
)
from sagaproof.contracts._schema_proof import (
    _Prover,
    _Stop,
)
from sagaproof.contracts._schema_util import (
    _esc,
)
from sagaproof.contracts.generate import NOT_FOUND, compile_validator, search

__all__ = ["Verdict", "canonical", "is_compatible", "validated_by_both"]


# ----------------------------------------------------------------------------- validation by both validators


@lru_cache(maxsize=2048)
def _py_validator(key: str) -> Any:
    # Imported here, not with the module: python-jsonschema's format checkers build their IRI parser when it is
    # imported (about 1.5 s of CPU), and every `sagaproof` command imports this module but only a counterexample
    # to confirm needs the second validator.
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads(key)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validated_by_both(producer: Any, consumer: Any, value: Any) -> bool:
    """True when jsonschema-rs *and* python-jsonschema both accept *value* under *producer* and reject it under
    *consumer*: the test a counterexample passes before it is reported."""
    try:
        if not compile_validator(producer).is_valid(value) or compile_validator(consumer).is_valid(value):
            return False
        pk = json.dumps(producer, sort_keys=True, default=str)
        ck = json.dumps(consumer, sort_keys=True, default=str)
        return bool(_py_validator(pk).is_valid(value)) and not _py_validator(ck).is_valid(value)
    except Exception:
        return False


def _first_error(schema: Any, value: Any) -> tuple[str, str, str, str]:
    for err in compile_validator(schema).iter_errors(value):
        path = list(err.schema_path)
        return ("".join(f"/{_esc(p)}" for p in path), "".join(f"/{_esc(p)}" for p in err.instance_path),
                str(path[-1]) if path else "false", str(err.message))
    return ("", "", "", "")


def _size(v: Any) -> int:
    return len(json.dumps(v, default=str))


def _targeted(producer: Any, consumer: Any, pc: Any, cc: Any) -> Any:
    try:
        cands = _Gen().values([pc], [cc])
    except (RecursionError, ValueError, TypeError):
        return NOT_FOUND
    pv, cv = compile_validator(producer), compile_validator(consumer)
    hits = []
    for v in cands:
        try:
            if pv.is_valid(v) and not cv.is_valid(v):
                hits.append(v)
        except Exception:
            continue
    for v in sorted(hits, key=_size):
        if validated_by_both(producer, consumer, v):
            return v
    return NOT_FOUND


def is_compatible(producer: Any, consumer: Any, *, max_examples: int = 100, confirm_examples: int = 25) -> Verdict:
    """Decide whether every message valid under *producer* is valid under *consumer*.

    Args:
        producer: the producer's payload JSON Schema (``$ref`` into other files resolved by the loader; local
            ``$ref``/``$anchor`` are resolved here).
        consumer: the consumer's payload JSON Schema.
        max_examples: budget of the property-based counterexample search when there is no proof.
        confirm_examples: budget of the property-based search run over a proven pair (0 skips it); a
            counterexample it finds overrides the proof.

    Returns:
        A :class:`Verdict`.

    Example::

        >>> is_compatible({"type": "integer"}, {"type": "number"}).status
        'ok'
        >>> v = is_compatible({"type": "object"}, {"type": "object", "required": ["id"]})
        >>> v.status, v.counterexample, v.consumer_path
        ('incompatible', {}, '/required')
    """
    def found(value: Any, reason: str) -> Verdict:
        cpath, ipath, kw, message = _first_error(consumer, value)
        if stop_or_none is None or stop_or_none.path != cpath:
            where = f"'{ipath[1:]}'" if ipath else "the message"
            reason = f"the consumer's '{kw}' at {cpath or '/'} rejects {where}: {message}"
        return Verdict("incompatible", value, cpath, ipath, reason, has_counterexample=True, keyword=kw)

    stop: _Stop
    stop_or_none: _Stop | None
    try:
        pc, cc = canonical(producer), canonical(consumer)
        res = _Prover().sub([pc], cc, "")
        stop_or_none = res
    except _Undecidable as exc:
        pc, cc = producer, consumer
        stop_or_none = _Stop(exc.keyword, "", exc.reason)
    except RecursionError:
        pc, cc = producer, consumer
        stop_or_none = _Stop("", "", "the schemas are nested too deeply")
    except Exception as exc:  # a schema form the proof did not foresee: undecided, never a crash of the gate
        pc, cc = producer, consumer
        stop_or_none = _Stop("", "", f"the proof stopped on an unexpected schema form ({type(exc).__name__})")

    w = _targeted(producer, consumer, pc, cc)
    if stop_or_none is None:
        if w is not NOT_FOUND:  # a proof bug never becomes a "safe"
            return found(w, "a producer message is rejected by the consumer")
        if confirm_examples:
            w = search(producer, lambda v: validated_by_both(producer, consumer, v), max_examples=confirm_examples)
            if w is not NOT_FOUND:
                return found(w, "a generated producer message is rejected by the consumer")
        return Verdict("ok", reason="every producer message is accepted")
    stop = stop_or_none
    if w is NOT_FOUND and max_examples:
        w = search(producer, lambda v: validated_by_both(producer, consumer, v), max_examples=max_examples)
    if w is not NOT_FOUND:
        return found(w, stop.reason if stop.keyword else "a generated producer message is rejected by the consumer")
    where = stop.path or "/"
    kw = stop.keyword or "?"
    return Verdict("unknown", None, stop.path, "",
                   f"undecided at '{kw}' ({where} of the consumer schema): {stop.reason}; no counterexample was found",
                   keyword=stop.keyword)
